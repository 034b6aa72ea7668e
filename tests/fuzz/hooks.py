"""schemathesis hooks for scripts/fuzz.sh (loaded through SCHEMATHESIS_HOOKS).

- Glance's two JSON-patch media types are JSON on the wire; without the alias schemathesis would
  not know how to send a PATCH body and every PATCH would go out empty.
- A new image needs a disk and a container format before data can be uploaded to it; generated
  bodies seldom carry both, so a body that names neither gets common ones. Bodies that name
  either keep whatever was generated (the coverage phase still sends the invalid ones).
- Every request that ends without an answer (connection reset, refused, timed out) is written
  to $FUZZ_NETWORK_ERRORS, one JSON line each, for tests/fuzz/verdict.py.
"""

import json
import os
import sys

import schemathesis

schemathesis.serializer.alias(
    [
        "application/openstack-images-v2.1-json-patch",
        "application/openstack-images-v2.0-json-patch",
    ],
    "application/json",
)


@schemathesis.hook("map_body")
def formats_for_new_images(ctx, body):
    op = ctx.operation
    if (
        op is not None
        and op.method.upper() == "POST"
        and op.path == "/v2/images"
        and isinstance(body, dict)
        and "disk_format" not in body
        and "container_format" not in body
    ):
        body = {**body, "disk_format": "raw", "container_format": "bare"}
    return body


@schemathesis.hook
def after_network_error(ctx, case, request):
    path = os.environ.get("FUZZ_NETWORK_ERRORS")
    if not path:
        return
    exc = sys.exc_info()[1]
    with open(path, "a", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {
                    "method": request.method,
                    "url": request.url,
                    "error": f"{type(exc).__name__}: {exc}" if exc else "unknown",
                }
            )
            + "\n"
        )
