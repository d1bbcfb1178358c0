"""Temporary credentials that expire are refreshed without dropping the conversation.

boto3 with a ``credential_process`` profile hands out short-lived keys (like SSO or assume-role);
the emulator rotates its accepted keys mid-conversation, the old ones expiring at once. Every new
stream asks boto3 for credentials, and boto3 refreshes keys that are close to expiry, so the next
stream (a continuation, here after 1.5 s) signs with the new keys and the conversation goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from nova_nb import s2s
from nova_nb.emulator import BackgroundEmulator, EmulatorCredentials
from nova_nb.emulator.conversation import ConversationOptions, conversation_handler
from nova_nb.s2s import events as ev

from .conftest import Collected, collect, speak_and_wait


def write_process_credentials(path: Path, creds: EmulatorCredentials) -> None:
    # 14 minutes left: inside boto3's refresh window, so every get_frozen_credentials() asks again.
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=14)
    path.write_text(
        json.dumps(
            {
                "Version": 1,
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": expiry.isoformat().replace("+00:00", "Z"),
            }
        )
    )


async def test_rotated_credentials_are_picked_up_by_the_next_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = BackgroundEmulator(handler=conversation_handler(ConversationOptions())).start()
    try:
        first = emulator.server.rotate_credentials()  # temporary credentials, with a session token
        current = tmp_path / "current.json"
        write_process_credentials(current, first)
        config = tmp_path / "config"
        config.write_text(
            "[profile rotating]\n"
            f"credential_process = {sys.executable} -c \"print(open('{current}').read())\"\n"
        )
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(var, raising=False)
        provider = s2s.new_provider(
            "amazon_nova",
            profile="rotating",
            endpoint_uri=emulator.endpoint_uri,
            ca_file=str(emulator.ca_file),
            region=emulator.region,
            latency_target="low",
            continuation_after_s=1.5,
        )
        session = await provider.start_streaming()  # type: ignore[attr-defined]
        got = Collected()
        collector = asyncio.create_task(collect(session, got))
        await speak_and_wait(session, 0.6)
        # The keys are rotated: the old ones stop working for new calls right now.
        second = emulator.server.rotate_credentials()
        write_process_credentials(current, second)
        await asyncio.sleep(1.6)
        for _ in range(3):
            chunks = await speak_and_wait(session, 0.6)
            assert chunks[-1].is_final and chunks[-1].error is None
        await session.close()
        await asyncio.wait({collector}, timeout=5)
        assert got.of(ev.SessionRenewed), "no new stream was opened after the rotation"
        assert not got.of(ev.StreamErrorEvent) and not got.of(ev.Reconnecting)
        assert emulator.server.accepted_credentials == (second,)
    finally:
        emulator.stop()
