"""The automated-rollback hook: re-evaluate open deploys, act once per regression.

What has fired is kept in ``<data>/deploys/watch-fired.json``, so a restarted watcher does
not roll back the same deploy twice. A deploy is *open* while the data reaches less than
``OPEN_FOR_NS`` past its start (event time), so starting a watcher over old data does not
act on last week's regressions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aftershock.deploys.verdict import HORIZON_NS, Verdict, iso

OPEN_FOR_NS = 2 * HORIZON_NS
STATE_FILE = Path("deploys") / "watch-fired.json"
WEBHOOK_TIMEOUT_S = 10.0


def deploy_key(v: Verdict) -> str:
    """The identity of a deploy in the state file."""
    d = v.deploy
    return f"{d.service}|{d.environment or ''}|{d.version}|{iso(d.started_at)}"


@dataclass
class Watcher:
    """Fires ``command`` and/or ``webhook`` for each new regression among ``verdicts``."""

    data_dir: Path
    command: str | None = None
    webhook: str | None = None

    @property
    def state_path(self) -> Path:
        """Where the fired deploys are recorded."""
        return self.data_dir / STATE_FILE

    def fired(self) -> dict[str, Any]:
        """Deploys already acted on, with what happened."""
        try:
            data: dict[str, Any] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        return data

    def _record(self, key: str, outcome: dict[str, Any]) -> None:
        state = self.fired()
        state[key] = outcome
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_path)

    def check(self, verdicts: list[Verdict]) -> list[Verdict]:
        """Acts on every open regression not acted on before; returns those."""
        done = self.fired()
        acted = []
        for v in verdicts:
            d = v.deploy
            if v.verdict != "regression" or d.data_end - d.started_at > OPEN_FOR_NS:
                continue
            key = deploy_key(v)
            if key in done:
                continue
            # Recorded before acting: a crash mid-action must not roll back twice.
            self._record(key, {"verdict": v.to_json(), "state": "firing"})
            self._record(key, {"verdict": v.to_json(), **self.fire(v)})
            acted.append(v)
        return acted

    def fire(self, v: Verdict) -> dict[str, Any]:
        """Runs the command and posts the webhook with the verdict JSON; the outcomes."""
        body = json.dumps(v.to_json())
        outcome: dict[str, Any] = {"state": "fired"}
        if self.command:
            env = os.environ | {"AFTERSHOCK_SERVICE": v.service, "AFTERSHOCK_VERSION": v.version}
            try:
                done = subprocess.run(
                    self.command, shell=True, input=body, text=True, env=env, check=False
                )
                outcome["command_exit"] = done.returncode
            except OSError as e:
                outcome["command_error"] = str(e)
        if self.webhook:
            request = urllib.request.Request(
                self.webhook,
                data=body.encode(),
                headers={"Content-Type": "application/json", "User-Agent": "aftershock-watch"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as reply:
                    outcome["webhook_status"] = reply.status
            except OSError as e:  # URLError and HTTPError are OSErrors
                outcome["webhook_error"] = str(e)
        failed = {k: v for k, v in outcome.items() if k.endswith("error")}
        if failed or outcome.get("command_exit", 0) != 0:
            print(f"aftershock watch: {v.service} {v.version}: {outcome}", file=sys.stderr)
        return outcome
