"""The /object_info extractor on a tiny ComfyUI-shaped checkout (no real one is at hand in the
tests): it runs the server's own functions, reads model folders as empty, and refuses what it
cannot read instead of guessing."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from simulators.contracts.comfyui.extract import ExtractError, Source, extract

SERVER = """
    import nodes

    class PromptServer:
        def add_routes(self):
            def node_info(node_class):
                obj_class = nodes.NODE_CLASS_MAPPINGS[node_class]
                info = {}
                info['input'] = obj_class.INPUT_TYPES()
                inputs = obj_class.INPUT_TYPES()
                info['input_order'] = {k: list(v.keys()) for (k, v) in inputs.items()}
                info['output'] = obj_class.RETURN_TYPES
                info['name'] = node_class
                names = nodes.NODE_DISPLAY_NAME_MAPPINGS
                info['display_name'] = names[node_class] if node_class in names else node_class
                info['output_node'] = hasattr(obj_class, 'OUTPUT_NODE') and obj_class.OUTPUT_NODE
                return info
"""
NODES = """
    import folder_paths
    MAX_RESOLUTION = 16384

    class Loader:
        @classmethod
        def INPUT_TYPES(s):
            models = folder_paths.get_filename_list("checkpoints")
            return {"required": {"ckpt_name": (models, {"tooltip": "x"}),
                                 "size": ("INT", {"max": MAX_RESOLUTION}),
                                 "mode": (s.modes,)}}
        modes = ["a", "b"]
        RETURN_TYPES = ("MODEL",)

    class Saver(Loader):
        OUTPUT_NODE = True
        RETURN_TYPES = ()

    NODE_CLASS_MAPPINGS = {"Loader": Loader, "Saver": Saver}
    NODE_DISPLAY_NAME_MAPPINGS = {"Loader": "Load It"}

    async def init_builtin_extra_nodes():
        extras_files = []
"""


def checkout(root: Path, nodes: str = NODES) -> Path:
    files = {
        "server.py": SERVER,
        "nodes.py": nodes,
        "folder_paths.py": "def get_filename_list(folder):\n    return []\n",
        "comfyui_version.py": '__version__ = "9.9.9"\n',
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    return root


def test_runs_the_servers_node_info(tmp_path: Path) -> None:
    data = extract(Source(checkout(tmp_path)), ["Loader", "Saver"], "example/ComfyUI")
    assert data["_source"]["comfyui_version"] == "9.9.9"
    assert len(data["_source"]["commit"]) == 40
    assert data["_folder_inputs"] == {
        "Loader": {"ckpt_name": "checkpoints"},
        "Saver": {"ckpt_name": "checkpoints"},
    }
    assert data["object_info"]["Loader"] == {
        "input": {
            "required": {
                "ckpt_name": [[], {"tooltip": "x"}],  # a models folder: empty, filled by the sim
                "size": ["INT", {"max": 16384}],
                "mode": [["a", "b"]],
            }
        },
        "input_order": {"required": ["ckpt_name", "size", "mode"]},
        "output": ["MODEL"],
        "name": "Loader",
        "display_name": "Load It",
        "output_node": False,
    }
    saver = data["object_info"]["Saver"]  # inherits INPUT_TYPES, overrides the rest
    assert (saver["output"], saver["display_name"], saver["output_node"]) == ([], "Saver", True)


def test_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    # INPUT_TYPES that reads a folder by other means: nothing this script may run.
    odd = NODES.replace(
        '"mode": (s.modes,)}}', '"mode": (sorted(__import__("os").listdir("."),),)}}'
    )
    with pytest.raises(ExtractError, match=r"nodes\.py:\d+"):
        extract(Source(checkout(tmp_path, odd)), ["Loader"], "example/ComfyUI")
    with pytest.raises(ExtractError, match="not core ComfyUI nodes: Nope"):
        extract(Source(tmp_path), ["Loader", "Nope"], "example/ComfyUI")
