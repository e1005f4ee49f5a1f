"""A fake Devin sessions API for tests, demos and benchmarks: `FakeDevinServer`.

```python
async with FakeDevinServer(time_scale=60.0) as server:
    client = DevinClient(base_url=server.url, api_key=server.api_key, org_id=server.org_id)

server = FakeDevinServer()  # in process, no socket, nothing to start
client = DevinClient(api_key=server.api_key, org_id=server.org_id, transport=server.transport())
```
It imports nothing from the SDK client but the transport seam's types and errors: it speaks plain
JSON, shaped like the docs, under both `/v3beta1/organizations/{org_id}` and
`/v3/organizations/{org_id}` (and `GET /v3/self`).

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
- Events follow the lifecycle (status changes, a few seeded shell/file/git events while working,
  one per message); `add_event` adds more. A user message gets a Devin reply 2 s later
  (`script_reply` picks the text). Insights' `analysis` is ready 5 s after `insights/generate`.
- A session created with `structured_output_schema` reports `output_generator(schema)` (or what
  `set_structured_output` set) once it reached running/finished.
- `index_lag` (server seconds): the session and insights lists answer as of that long ago.
- `stale_fraction`/`stale_by`: that share of session get/list answers comes from a replica
  `stale_by` server seconds behind (states and `updated_at` of then, a session never older than
  its creation). `close_idle_after` (real seconds): the socket front closes each keep-alive
  connection that long after its last answer if no request came, without `Connection: close`.
- Downloads answer 307 to the bucket origin (its own port; `https://bucket.fake.invalid` in
  process), which refuses any request carrying Authorization (`bucket_saw_authorization`);
  `download_mode="direct"` answers the bytes. Secret values never reach the log or an answer.
"""

from ._auth import ALL_PERMISSIONS, Permission
from ._faults import Fault, RandomFaults
from ._instances import instance_for
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
    "instance_for",
    "serve_forever",
]
