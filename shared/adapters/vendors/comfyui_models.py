"""ComfyUI's answers as the engine reads them: the prompt's acceptance, its ``/history`` entry
(status and the images each output node saved) and the websocket's execution failures. Fields
the engine does not read are kept (``extra="allow"``) and not looked at."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ComfyModel(BaseModel):
    """A ComfyUI object of which the engine reads some fields (ids read as text)."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class PromptAccepted(ComfyModel):
    """``POST /prompt``: the id the prompt runs under, and the nodes ComfyUI objected to."""

    prompt_id: str | None = None
    node_errors: object = None


class OutputImage(ComfyModel):
    """An image a node saved: where ``/view`` serves it."""

    filename: str
    subfolder: str = ""
    type: str = "output"


class NodeOutput(ComfyModel):
    """What an output node produced (``executed`` event, or ``/history``)."""

    images: list[OutputImage] | None = None


class HistoryStatus(ComfyModel):
    """A prompt's status in ``/history``: its ``messages`` are ``[event, data]`` pairs."""

    status_str: str | None = None
    completed: bool | None = True
    messages: list[object] | None = None


class HistoryEntry(ComfyModel):
    """``GET /history/{prompt_id}``: the prompt's entry once it ran."""

    status: HistoryStatus | None = None
    outputs: dict[str, NodeOutput] | None = None


class ExecutionFailure(ComfyModel):
    """An ``execution_error`` or ``execution_interrupted`` event's data (``event`` says which)."""

    event: str = "execution_error"
    prompt_id: str | None = None
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
