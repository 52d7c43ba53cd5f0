"""Settings of the generator stage."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.adapters.storage import ImageStorageSettings
from shared.adapters.vendors.claude import ClaudeSettings
from shared.adapters.vendors.comfyui import ComfyUISettings
from shared.contract.events import ProductType
from shared.domain.catalog import CatalogSettings
from shared.domain.printsize import PrintArea, PrintSizing
from shared.domain.screening.settings import ScreeningSettings
from shared.pipeline.runner import RunnerSettings
from shared.platform.settings import DatabaseSettings, JobLimitSettings

# Printify's front placeholders (px at 300 DPI) of the default catalog's blueprints: the tee 6,
# the hoodie 77 and the 11oz mug 68. Used when Printify's catalog cannot be read at start (the
# printify stage still places the art on the real placeholders and refuses a product that would
# print below PRINT_MIN_DPI).
DEFAULT_PRINT_AREAS: dict[ProductType, PrintArea] = {
    ProductType.TSHIRT: PrintArea(width=4500, height=5100),
    ProductType.HOODIE: PrintArea(width=3852, height=3396),
    ProductType.MUG: PrintArea(width=2475, height=1155),
}


class GeneratorSettings(
    RunnerSettings,
    ClaudeSettings,
    ComfyUISettings,
    ImageStorageSettings,
    JobLimitSettings,
    CatalogSettings,
    DatabaseSettings,
    ScreeningSettings,
):
    """Claude, ComfyUI and image storage (env names in the README). The Printify account,
    PRODUCT_CATALOG and the database (the account's shared budget) only to read each product
    type's print area at start. SCREENING_*: what is checked in every design before it is
    handed on."""

    render_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries of one image's render before the job fails"
    )
    image_width: int = Field(default=1024, ge=64, le=8192, description="Sampled size")
    image_height: int = Field(default=1024, ge=64, le=8192)
    print_dpi: float = Field(
        default=300, gt=0, le=1200, description="Resolution the art is upscaled for"
    )
    print_max_upscale: float = Field(
        default=4.0, ge=1, le=64, description="Most the sampled art is enlarged (the model's x4)"
    )
    print_areas: dict[ProductType, PrintArea] = Field(
        default_factory=dict,
        description="Print areas per type (px at 300 DPI), over the catalog's (JSON)",
    )
    printify_api_key: SecretStr | None = Field(
        default=None, description="Unset = print areas from DEFAULT_PRINT_AREAS, not Printify"
    )
    printify_api_url: str = "https://api.printify.com"

    def print_sizing(
        self, catalog_areas: dict[ProductType, PrintArea] | None = None
    ) -> PrintSizing:
        """How large each job's art is rendered: for the print areas read from Printify's
        catalog (else the defaults), PRINT_AREAS overriding either."""
        areas = {**DEFAULT_PRINT_AREAS, **(catalog_areas or {}), **self.print_areas}
        return PrintSizing(
            areas={t.value: a for t, a in areas.items()},
            dpi=self.print_dpi,
            max_upscale=self.print_max_upscale,
        )
