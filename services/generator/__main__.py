"""``python -m services.generator``: the generator stage service."""

from services.generator.handler import build_handler
from services.generator.settings import GeneratorSettings
from shared.events import JobRequested
from shared.service import main
from shared.topics import GENERATOR

if __name__ == "__main__":
    main(GENERATOR, GeneratorSettings, build_handler, accept=(JobRequested,))
