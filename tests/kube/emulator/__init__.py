"""A stateful Kubernetes API emulator for the tests (docs/kubernetes-testing.md).

The real ``kubernetes`` client talks to it over real HTTP: objects, list and watch with
resourceVersions, bookmarks, 410 Expired, the status subresource, merge/JSON patches, 409 on
stale resourceVersions, 404, fault injection, and pods/exec over WebSockets.
"""

from ._core import ApiEmulator, EmulatorError, RecordedRequest
from ._exec import LocalExec
from ._resources import ResourceType, default_resources

__all__ = [
    "ApiEmulator",
    "EmulatorError",
    "LocalExec",
    "RecordedRequest",
    "ResourceType",
    "default_resources",
]
