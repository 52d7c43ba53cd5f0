"""``python -m services.printify``: the printify stage service."""

from services.printify.handler import build_handler
from services.printify.settings import PrintifySettings
from shared.contract.events import ImageGenerated, SellerDecision
from shared.contract.topics import PRINTIFY
from shared.pipeline.service import main

if __name__ == "__main__":
    main(PRINTIFY, PrintifySettings, build_handler, accept=(ImageGenerated, SellerDecision))
