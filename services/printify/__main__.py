"""``python -m services.printify``: the printify stage service."""

from services.printify.handler import build_handler
from services.printify.settings import PrintifySettings
from shared.events import ImageGenerated
from shared.service import main
from shared.topics import PRINTIFY

if __name__ == "__main__":
    main(PRINTIFY, PrintifySettings, build_handler, accept=(ImageGenerated,))
