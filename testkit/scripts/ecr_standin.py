"""An Amazon ECR API stand-in for replicant's tests: moto in server mode,
whose GetAuthorizationToken is made stricter than moto's own. Each token
is new (a random password), expires after --ttl seconds, records which
access key signed the request, and is appended to --ledger as a line
"password expiry-unix-seconds access-key-id" so that the test registry's
token issuer accepts exactly the tokens this service handed out.

usage: ecr_standin.py --port P --ledger FILE --ttl SECONDS
"""

import argparse
import re
import secrets
import signal
import sys
import threading
import time
from base64 import b64encode

from moto.core.responses import ActionResult
from moto.ecr import responses
from moto.server import ThreadedMotoServer

ledger_lock = threading.Lock()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--ttl", type=float, default=43200)
    args = parser.parse_args()

    def get_authorization_token(self):  # replaces moto's
        auth = self.headers.get("Authorization", "")
        match = re.search(r"Credential=([A-Z0-9]+)/", auth)
        access_key = match.group(1) if match else "unsigned"
        registry_id = self.current_account
        password = f"{registry_id}-{secrets.token_hex(16)}"
        expires = time.time() + args.ttl
        with ledger_lock, open(args.ledger, "a") as ledger:
            ledger.write(f"{password} {expires:.3f} {access_key}\n")
        token = b64encode(f"AWS:{password}".encode()).decode()
        data = {
            "authorizationToken": token,
            "expiresAt": expires,
            "proxyEndpoint": f"https://{registry_id}.dkr.ecr.{self.region}.amazonaws.com",
        }
        return ActionResult({"authorizationData": [data]})

    responses.ECRResponse.get_authorization_token = get_authorization_token
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
