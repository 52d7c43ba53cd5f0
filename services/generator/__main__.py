"""``python -m services.generator``: the generator stage service."""

from services.generator.handler import build_handler
from services.generator.settings import GeneratorSettings
from shared.contract.events import JobRequested, SellerDecision
from shared.contract.topics import GENERATOR
from shared.pipeline.service import main

if __name__ == "__main__":
    main(GENERATOR, GeneratorSettings, build_handler, accept=(JobRequested, SellerDecision))
