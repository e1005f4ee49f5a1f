"""A fake Devin sessions API for tests, demos and benchmarks: `FakeDevinServer`.

```python
async with FakeDevinServer(time_scale=60.0) as server:
    client = DevinClient(base_url=server.url, api_key=server.api_key, org_id=server.org_id)
```
It imports nothing from the SDK client: it speaks plain JSON, shaped like the docs, under both
`/v3beta1/organizations/{org_id}` and `/v3/organizations/{org_id}`.

Behaviour worth knowing:
- Lifecycle (server seconds; server seconds = real seconds x time_scale): new -> claimed (1 s) ->
  running/working (+2 s) -> running/finished (70 %) or running/waiting_for_user, 10-30 s later
  (seeded) -> suspended/inactivity 60 s after that. A message wakes a suspended session (resuming,
  then running/working 1 s later) or sets a settled one working again. `script()` and
  `set_status()` replace the automatic path; the session stays at the last step.
- A message to an `exit`/`error` session, or to an archived one, is a 409.
- List filters: array filters accept repeated keys and comma-joined values; `tags` keeps sessions
  having ALL the given tags, the other arrays ANY; time bounds are `after <= t < before`. Order is
  created_at then session id; `total` is null when only a full scan could count it.
- Errors are FastAPI-style `{"detail": ...}`; `error_style="problem"` gives RFC 9457 bodies.
"""

from ._auth import ALL_PERMISSIONS, Permission
from ._faults import Fault, RandomFaults
from ._lifecycle import Step
from ._log import RecordedRequest
from ._mock import MockTransport
from ._serve import serve_forever
from ._server import FakeDevinServer

__all__ = [
    "ALL_PERMISSIONS",
    "FakeDevinServer",
    "Fault",
    "MockTransport",
    "Permission",
    "RandomFaults",
    "RecordedRequest",
    "Step",
    "serve_forever",
]
