"""The ``nova-nb`` command.

::

    nova-nb emulator serve [--port 0] [--region us-east-1] [--engine auto] [--behaviour service]
                           [--fault NAME=VALUE ...] [--session-limit S] [--json]
    nova-nb providers
    nova-nb voices [--model ID] [--language L]

Adding a command: write ``def _add_<name>(commands)`` that adds a parser to ``commands`` (the
subparsers action) and sets ``func=<handler>`` on it, where ``handler(args) -> int`` returns the exit
status; then list it in :data:`COMMANDS`. Handlers import what they need when they run, so that
``nova-nb --help`` stays quick and one command's dependencies never break another command.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from .errors import NovaNbError

if TYPE_CHECKING:
    from .emulator.server import Admission, EmulatorServer, StreamHandler

PROG: Final = "nova-nb"
#: The engine made for benchmarks (nova_nb.emulator.benchburst); the others are the local provider's.
BENCH_ENGINE: Final = "bench-burst"
#: How long ``emulator serve`` gives its streams to finish after SIGINT/SIGTERM.
SHUTDOWN_TIMEOUT_S: Final = 3.0
#: Beyond that, a watchdog ends the process: stopping must never hang.
SHUTDOWN_WATCHDOG_S: Final = SHUTDOWN_TIMEOUT_S + 2.0

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[[Any], None]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the descriptions' line breaks; align subcommand help as other options' help."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            # argparse measures subcommand names without their extra indent, so a long name would
            # push its help to the next line; count the indent.
            self._action_max_length += self._indent_increment


# --------------------------------------------------------------------------------------------------
# emulator serve
# --------------------------------------------------------------------------------------------------


def _engine_names() -> list[str]:
    from .emulator.local import DEFAULT_ENGINE, ENGINES

    return [DEFAULT_ENGINE, *ENGINES, BENCH_ENGINE]


def _behaviour_names() -> list[str]:
    from .emulator.conversation import BEHAVIOURS

    return list(BEHAVIOURS)


#: ``--fault NAME=VALUE``: the :class:`~nova_nb.emulator.conversation.Faults` field each sets, and how
#: its value is read.
FAULTS: Final[dict[str, tuple[str, str]]] = {
    "exception-at": ("exception_at_event", "N:exceptionType:message (in-stream exception after input N)"),
    "reset-at": ("reset_at_event", "N (RST_STREAM after input event N)"),
    "drop-at": ("drop_at_event", "N (drop the TCP connection after input event N)"),
    "first-audio-delay": ("first_audio_delay_s", "S (seconds before each reply's first audio)"),
    "sentence-gap": ("sentence_gap_s", "S (seconds before each later sentence of a reply)"),
    "input-timeout": ("input_timeout_s", "S (end a stream with no input for S seconds)"),
    "faulty-streams": ("faulty_streams", "N (apply the in-stream faults to the first N streams only)"),
    "http-error": ("http_error_at_open", "STATUS:ErrorType:message (refuse every call at open)"),
}


def parse_fault(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` → (Faults field, value). Raises ConfigError on anything else."""
    from .errors import ConfigError, one_of

    name, sep, value = text.partition("=")
    if not sep or name not in FAULTS:
        raise ConfigError(f"--fault {text!r}: use NAME=VALUE with NAME {one_of(FAULTS)}")
    field_name, form = FAULTS[name]
    try:
        if name == "exception-at":
            n, exc_type, message = value.split(":", 2)
            return field_name, (int(n), exc_type, message)
        if name == "http-error":
            from .emulator.server import HttpError

            status, error_type, message = value.split(":", 2)
            return field_name, HttpError(int(status), error_type, message)
        if field_name.endswith("_s"):
            return field_name, float(value)
        return field_name, int(value)
    except ValueError:
        raise ConfigError(f"--fault {text!r}: the value must be {form}") from None


def make_handler(
    engine: str,
    session_limit_s: float | None = None,
    *,
    behaviour: str = "service",
    faults: Sequence[str] = (),
) -> StreamHandler:
    """The emulator's stream handler for ``engine`` (a local-provider engine, ``auto`` or
    ``bench-burst``), with a named service behaviour and ``NAME=VALUE`` faults (conversation engines)."""
    return _make_serving(engine, session_limit_s, behaviour=behaviour, faults=faults)[0]


def _make_serving(
    engine: str, session_limit_s: float | None, *, behaviour: str, faults: Sequence[str]
) -> tuple[StreamHandler, Admission | None]:
    """:func:`make_handler`, and the admission hook of an ``http-error`` fault."""
    from .errors import ConfigError, one_of

    if session_limit_s is not None and not 0 < session_limit_s:
        raise ConfigError(f"--session-limit must be a positive number of seconds, got {session_limit_s:g}")
    if engine == BENCH_ENGINE:
        from .emulator.benchburst import bench_handler

        return bench_handler(session_limit_s=session_limit_s), None
    from .emulator.conversation import BEHAVIOURS, admission_for, conversation_handler
    from .emulator.local import ENGINES, resolve_engine

    if engine not in _engine_names():
        raise ConfigError(f"unknown engine {engine!r}; use {one_of(_engine_names())}")
    if behaviour not in BEHAVIOURS:
        raise ConfigError(f"unknown behaviour {behaviour!r}; use {one_of(BEHAVIOURS)}")
    # "auto": the speech engine where its models load, else scripted with a warning, as
    # new_provider("local") does.
    options = ENGINES[resolve_engine(engine)]()
    fault_fields = dict(parse_fault(f) for f in faults)
    if session_limit_s is not None:
        fault_fields["session_limit_s"] = session_limit_s
    options = dataclasses.replace(
        options,
        behaviour=BEHAVIOURS[behaviour],
        faults=dataclasses.replace(options.faults, **fault_fields),
    )
    return conversation_handler(options), admission_for(options)


def _connection_info(server: EmulatorServer, engine: str, behaviour: str = "service") -> dict[str, Any]:
    creds = server.credentials
    return {
        "event": "listening",
        "endpoint_uri": server.endpoint_uri,
        "ca_file": str(server.ca_file),
        "region": server.region,
        "aws_access_key_id": creds.access_key_id,
        "aws_secret_access_key": creds.secret_access_key,
        "aws_session_token": creds.session_token,
        "engine": engine,
        "behaviour": behaviour,
        "pid": os.getpid(),
    }


def _example_code(info: dict[str, Any]) -> str:
    token = f"\n    aws_session_token={info['aws_session_token']!r}," if info["aws_session_token"] else ""
    return (
        "from nova_nb import s2s\n"
        "\n"
        "provider = s2s.new_provider(\n"
        '    "amazon_nova",\n'
        f"    endpoint_uri={info['endpoint_uri']!r},\n"
        f"    ca_file={info['ca_file']!r},\n"
        f"    region={info['region']!r},\n"
        f"    aws_access_key_id={info['aws_access_key_id']!r},\n"
        f"    aws_secret_access_key={info['aws_secret_access_key']!r},{token}\n"
        ")"
    )


def _print_listening(info: dict[str, Any], out: TextIO) -> None:
    rows = [
        ("endpoint", info["endpoint_uri"]),
        ("CA file", info["ca_file"]),
        ("region", info["region"]),
        ("access key id", info["aws_access_key_id"]),
        ("secret access key", info["aws_secret_access_key"]),
    ]
    if info["aws_session_token"]:
        rows.append(("session token", info["aws_session_token"]))
    width = max(len(name) for name, _ in rows)
    lines = [
        f"Nova Sonic emulator (engine {info['engine']}, behaviour {info['behaviour']}, pid {info['pid']})"
        " is listening.",
        "",
    ]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [
        "",
        "The credentials are this emulator's own, made at random for this run: they are not AWS",
        "credentials and open nothing but this emulator. Any Bedrock client can talk to it given the",
        "endpoint, trust in the CA file, the region and these keys. With nova_nb:",
        "",
        textwrap.indent(_example_code(info), "    "),
        "",
        "Each input event it rejects is logged on stderr (event, exception type, message).",
        "Stop with Ctrl+C (or SIGTERM).",
    ]
    print("\n".join(lines), file=out, flush=True)


def _log_rejections() -> None:
    """One stderr line per input event the emulator rejects (INFO on ``nova_nb.emulator.rejected``)."""
    import logging

    logger = logging.getLogger("nova_nb.emulator.rejected")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _resolve_engine(engine: str) -> str:
    """``auto`` → the engine used, any warning about it printed on stderr (stdout may be JSON)."""
    if engine == BENCH_ENGINE:
        return engine
    import warnings

    from .emulator.local import resolve_engine

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = resolve_engine(engine)
    for warning in caught:
        print(f"{PROG}: warning: {warning.message}", file=sys.stderr, flush=True)
    return resolved


async def _serve(args: argparse.Namespace) -> int:
    from .emulator.server import EmulatorServer

    _log_rejections()
    engine = _resolve_engine(args.engine)
    handler, admission = _make_serving(
        engine, args.session_limit, behaviour=args.behaviour, faults=args.fault
    )
    server = EmulatorServer(handler=handler, region=args.region, port=args.port, admission=admission)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    # However the shutdown goes, the process ends within a bound. A daemon thread: exit never waits for it.
    watchdog = threading.Timer(SHUTDOWN_WATCHDOG_S, _watchdog_exit)
    watchdog.daemon = True

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
            watchdog.start()

    for signum in signals:
        try:
            loop.add_signal_handler(signum, on_signal)
        except NotImplementedError:  # Windows: no loop signal handlers
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(on_signal))
    try:
        info = _connection_info(server, engine, args.behaviour)
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            _print_listening(info, sys.stdout)
        await stop.wait()
    finally:
        for signum in signals:
            try:
                loop.remove_signal_handler(signum)
            except NotImplementedError:
                signal.signal(signum, signal.SIG_DFL)
        stopping = asyncio.ensure_future(server.stop(SHUTDOWN_TIMEOUT_S))
        done, _ = await asyncio.wait({stopping}, timeout=SHUTDOWN_TIMEOUT_S + 1.0)
        if not done:
            print(f"{PROG}: the emulator did not stop within {SHUTDOWN_TIMEOUT_S:g} s", file=sys.stderr)
    if not args.json:
        print("Emulator stopped.", flush=True)
    return 0


def _watchdog_exit() -> None:
    print(
        f"{PROG}: shutdown took longer than {SHUTDOWN_WATCHDOG_S:g} s; exiting", file=sys.stderr, flush=True
    )
    os._exit(1)


def _cmd_emulator_serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


def _add_emulator(commands: Any) -> None:
    emulator = commands.add_parser(
        "emulator",
        help="run the local Nova Sonic emulator",
        description="The local, protocol-faithful Nova Sonic emulator (HTTPS/HTTP/2, SigV4, event-stream).",
        formatter_class=_Formatter,
    )
    sub = emulator.add_subparsers(dest="emulator_command", metavar="COMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve the emulator in the foreground until Ctrl+C",
        formatter_class=_Formatter,
        description=textwrap.dedent(
            """\
            Serve an emulated InvokeModelWithBidirectionalStream endpoint on 127.0.0.1, in the foreground,
            until SIGINT (Ctrl+C) or SIGTERM.

            It prints what a client needs to connect: the endpoint URI, the file of the CA that signed its
            TLS certificate (made for this run), the region, and credentials. The credentials are the
            emulator's own random test credentials for this run, not AWS credentials; they are printed
            because any Bedrock client pointed at the emulator must sign its requests with them.

            Engines: "speech" hears with Silero VAD and Moonshine and speaks with espeak-ng; "scripted" is
            the offline conversation engine without speech models (deterministic; a loud tone counts as
            speech); "auto" (the default) is speech where its models load, else scripted with a warning;
            "bench-burst" answers with measured bursts of audio for bench/ (see
            nova_nb.emulator.benchburst).

            Behaviours (--behaviour) are what the real service is known to do: "service" (the default)
            is its structure as captured in 2026; the others vary the barge-in signals or drop the speech
            events; "gentle" is the documentation's simpler reading. See docs/TEST_YOUR_CLIENT.md.
            Each input event the emulator rejects is logged on stderr with the service's exception.
            """
        ),
    )
    serve.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: 0, a free port)")
    serve.add_argument(
        "--region", default="us-east-1", help="the region clients must sign for (default: us-east-1)"
    )
    serve.add_argument(
        "--engine",
        default="auto",
        choices=_engine_names(),
        help="what the emulated model does (default: auto)",
    )
    serve.add_argument(
        "--behaviour",
        default="service",
        choices=_behaviour_names(),
        help="what the emulated service does at barge-in and in odd cases (default: service)",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="inject a fault (repeatable): "
        + "; ".join(f"{name}={form}" for name, (_, form) in FAULTS.items()),
    )
    serve.add_argument(
        "--session-limit",
        type=float,
        default=None,
        metavar="S",
        help="end each stream with modelTimeoutException after S seconds (default: 480, as the service)",
    )
    serve.add_argument(
        "--json",
        action="store_true",
        help="print the connection details as one JSON line (for scripts), nothing else on stdout",
    )
    serve.set_defaults(func=_cmd_emulator_serve)


# --------------------------------------------------------------------------------------------------
# providers, voices
# --------------------------------------------------------------------------------------------------


def _cmd_providers(args: argparse.Namespace) -> int:
    from . import s2s

    for name in s2s.providers():
        print(name)
    return 0


def _add_providers(commands: Any) -> None:
    parser = commands.add_parser(
        "providers",
        help="list the registered speech-to-speech providers",
        description="List the providers s2s.new_provider() knows: built-ins and entry points "
        "(group nova_nb.s2s.providers), one name per line.",
        formatter_class=_Formatter,
    )
    parser.set_defaults(func=_cmd_providers)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def voice_rows(model_id: str | None = None, language: str | None = None) -> list[list[str]]:
    """The voices table (header first). Raises ConfigError for an unknown model or language."""
    from .errors import ConfigError, one_of
    from .protocol import catalog

    if model_id is not None and model_id not in catalog.MODELS:
        raise ConfigError(f"unknown model {model_id!r}; use {one_of(catalog.MODELS)}")
    models = [catalog.MODELS[model_id]] if model_id else list(catalog.MODELS.values())
    if language is not None and not any(language in m.locales for m in models):
        known = sorted({loc for m in models for loc in m.locales})
        raise ConfigError(f"no model here speaks {language!r}; languages: {one_of(known)}")
    rows = [["MODEL", "VOICE", "GENDER", "LOCALES", "DEFAULT FOR"]]
    for model in models:
        if language is not None and language not in model.locales:
            continue
        ids = model.voices_for(language) if language is not None else list(model.voices)
        defaults: dict[str, list[str]] = {}
        for locale in model.locales:
            defaults.setdefault(catalog.default_voice(model.id, locale), []).append(locale)
        for voice_id in ids:
            voice = model.voices[voice_id]
            locales = ", ".join(voice.locales) + (" (polyglot: all)" if voice.polyglot else "")
            default_for = defaults.get(voice_id, [])
            if language is not None:
                default_for = [loc for loc in default_for if loc == language]
            rows.append([model.id, voice.id, voice.gender, locales, ", ".join(default_for)])
    return rows


def _cmd_voices(args: argparse.Namespace) -> int:
    print(_table(voice_rows(args.model, args.language)))
    return 0


def _add_voices(commands: Any) -> None:
    parser = commands.add_parser(
        "voices",
        help="list Nova Sonic voices per model and language",
        description="List the voices each Nova Sonic model accepts as voiceId, with their locales. "
        "Polyglot voices speak every language of their model. 'DEFAULT FOR' names the languages for "
        "which the voice is the default when none is given.",
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--model", metavar="ID", default=None, help="only this model id (default: all models)"
    )
    parser.add_argument(
        "--language", metavar="L", default=None, help="only voices that speak this locale, e.g. en-GB"
    )
    parser.set_defaults(func=_cmd_voices)


# --------------------------------------------------------------------------------------------------
# talk
# --------------------------------------------------------------------------------------------------


def _provider_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"latency_target": args.latency_target, "language": args.language}
    if args.region:
        options["region"] = args.region
    if getattr(args, "profile", None):
        options["profile"] = args.profile
    if getattr(args, "engine", None) and args.provider == "local":
        options["engine"] = args.engine
    return options


async def _talk(args: argparse.Namespace) -> int:
    from . import audio as pcm
    from . import s2s
    from .s2s.talk import talk

    provider = s2s.new_provider(args.provider, **_provider_options(args))
    if not isinstance(provider, s2s.StreamingS2SProvider):
        raise s2s.ConfigError(f"provider {args.provider!r} cannot stream")
    context = s2s.ConversationContext(system_prompt=args.system_prompt) if args.system_prompt else None
    result = await talk(
        provider, args.input, context=context, voice_id=args.voice, pace=not args.fast, timeout_s=args.timeout
    )
    out = Path(args.output) if args.output else Path(args.input).with_suffix(".reply.wav")
    pcm.write_wav(out, result.reply_audio, result.sample_rate)
    if args.json:
        turns = [
            {
                "user": t.user_text,
                "assistant": t.reply_text,
                "interrupted": t.interrupted,
                "reply_s": round(t.reply_duration_s, 3),
                "end_of_speech_to_first_audio_s": _round(t.end_of_speech_to_first_audio_s),
                "decision_to_first_audio_s": _round(t.decision_to_first_audio_s),
            }
            for t in result.turns
        ]
        print(json.dumps({"provider": provider.name, "output": str(out), "turns": turns}))
        return 0 if result.turns else 1
    print(
        f"provider {provider.name}, voice {args.voice or provider.config.resolved_voice_id}, "
        f"latency target {args.latency_target}{' (sent faster than real time)' if args.fast else ''}"
    )
    if not result.turns:
        print("no reply: the model heard no turn in this audio (is there speech, followed by a pause?)")
        return 1
    for i, t in enumerate(result.turns, 1):
        print(f"\nturn {i}")
        print(f"  you:        {t.user_text or '(typed or no transcript)'}")
        print(f"  assistant:  {t.reply_text}{'  [interrupted]' if t.interrupted else ''}")
        eos, decision = t.end_of_speech_to_first_audio_s, t.decision_to_first_audio_s
        if eos is not None:
            print(
                f"  latency:    end of speech → first audio {eos * 1000:.0f} ms (includes the turn-end pause)"
            )
        if decision is not None:
            print(f"              turn decision → first audio {decision * 1000:.0f} ms")
    seconds = result.reply_audio.size / result.sample_rate
    print(f"\nreply audio: {out} ({seconds:.2f} s at {result.sample_rate} Hz)")
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _cmd_talk(args: argparse.Namespace) -> int:
    return asyncio.run(_talk(args))


def _add_common_provider_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", default="local", help="local (offline emulator) or amazon_nova")
    parser.add_argument(
        "--latency-target",
        default="medium",
        choices=("low", "medium", "high"),
        help="turn-end pause: low 1.5 s, medium 1.75 s, high 2.0 s (Nova 2)",
    )
    parser.add_argument("--language", default="en-US", help="locale, e.g. en-GB (picks the default voice)")
    parser.add_argument("--region", default=None, help="AWS region (amazon_nova)")
    parser.add_argument("--profile", default=None, help="AWS profile from ~/.aws/config (amazon_nova)")


def _add_talk(commands: Any) -> None:
    parser = commands.add_parser(
        "talk",
        help="say an audio file to the model, save its spoken reply",
        description="Stream a WAV file into a session as a microphone would (real time, then silence "
        "until the model has answered), print what the model heard and said with per-turn latency, and "
        "write the reply audio to a WAV file. Uses the offline emulator unless --provider amazon_nova.",
        formatter_class=_Formatter,
    )
    parser.add_argument("input", help="WAV file with the question (any rate, mono or stereo)")
    parser.add_argument("-o", "--output", default=None, help="reply WAV (default: INPUT.reply.wav)")
    parser.add_argument("--voice", default=None, help="Nova voice id, e.g. matthew (see 'nova-nb voices')")
    parser.add_argument("--system-prompt", default=None, help="the conversation's system prompt")
    parser.add_argument("--engine", default=None, help="local emulator engine: auto, speech or scripted")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="send faster than real time (the emulator decides turns in audio time; "
        "wall-clock latencies are then not meaningful)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    _add_common_provider_args(parser)
    parser.set_defaults(func=_cmd_talk)


# --------------------------------------------------------------------------------------------------
# doctor
# --------------------------------------------------------------------------------------------------


#: The server extension that turns on TCP_NODELAY for kernel websockets (nova_nb.widgets.server).
SERVER_EXTENSION: Final = "nova_nb.widgets.server"
#: Variables BinderHub sets in every server it launches (its spawner's ``binder_*`` user options).
BINDER_ENV: Final = ("BINDER_LAUNCH_HOST", "BINDER_REQUEST", "BINDER_REPO_URL", "BINDER_REF_URL")
#: Peak RSS of one kernel running notebooks 00 and 01 with the speech engine: 344 MiB, measured by
#: scripts/ci-binder.sh on 2026-12-02 (docs/BINDER.md). Less than this free: warn.
KERNEL_PEAK_MIB: Final = 344
#: cgroup limits at or above this mean "no limit" (cgroup v1 writes 2^63 rounded down to a page).
_UNLIMITED: Final = 1 << 60


def binder_status(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """("binder" | "repo2docker" | "no", detail): launched by BinderHub, in a repo2docker image that
    BinderHub did not launch (``repo2docker`` run locally, or a build step), or neither."""
    env = os.environ if environ is None else environ
    found = [name for name in BINDER_ENV if env.get(name)]
    if found:
        where = env.get("BINDER_LAUNCH_HOST") or "a BinderHub"
        repo = env.get("BINDER_REPO_URL") or env.get("BINDER_REQUEST") or "this repository"
        return "binder", f"yes: launched by {where} from {repo}; the session is temporary, download your work"
    if env.get("REPO_DIR") and env.get("NB_PYTHON_PREFIX"):
        return "repo2docker", f"no, but in a repo2docker image (REPO_DIR={env['REPO_DIR']})"
    return "no", "no (BinderHub's variables are not set)"


def server_extension_enabled() -> bool | None:
    """Whether Jupyter's config (the same files ``jupyter server extension list`` reads, for this
    Python's environment and user) enables :data:`SERVER_EXTENSION`; None without jupyter_server."""
    import warnings

    with warnings.catch_warnings():
        # jupyter_core 5 warns on import that its paths will move to platformdirs in v6; that concerns
        # where user config lives in the future, not this read of today's paths.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="jupyter_core.*")
        warnings.filterwarnings(
            "ignore", message="Jupyter is migrating its paths", category=DeprecationWarning
        )
        try:
            from jupyter_core.paths import jupyter_config_path
            from jupyter_server.extension.config import ExtensionConfigManager
        except ImportError:
            return None
        manager = ExtensionConfigManager(read_config_path=jupyter_config_path())
        return bool(manager.enabled(SERVER_EXTENSION))


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _inactive_file(stat: Path, key: str) -> int:
    """Page cache the kernel can drop at once: not memory a new kernel would have to fight for."""
    try:
        for line in stat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def cgroup_memory() -> tuple[int, int, str] | None:
    """(limit, in use, cgroup) in bytes for the tightest memory limit on this process's cgroup and its
    ancestors (cgroup v2 or v1), where a Binder pod's 2 GB limit is enforced. "In use" leaves out
    inactive page cache, as Kubernetes' working set does. None when there is no limit (or no Linux)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates: list[tuple[Path, str, str, str]] = []  # (dir, limit file, usage file, stat key)
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base = Path("/sys/fs/cgroup")
            limit_name, usage_name, key = "memory.max", "memory.current", "inactive_file"
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory")
            limit_name, usage_name, key = (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        else:
            continue
        parts = [p for p in path.split("/") if p]
        # This cgroup and each ancestor (a container may see only its own part of the tree: "/").
        for depth in range(len(parts), -1, -1):
            candidates.append((base.joinpath(*parts[:depth]), limit_name, usage_name, key))
    best: tuple[int, int, str] | None = None
    for directory, limit_name, usage_name, key in candidates:
        limit = _read_int(directory / limit_name)  # "max" (v2, no limit) is not a number
        usage = _read_int(directory / usage_name)
        if limit is None or usage is None or limit >= _UNLIMITED:
            continue
        in_use = max(0, usage - _inactive_file(directory / "memory.stat", key))
        if best is None or limit - in_use < best[0] - best[1]:
            best = (limit, in_use, str(directory))
    return best


def _host_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def running_kernels() -> list[tuple[int, int]]:
    """(pid, RSS bytes) of this user's running IPython kernels (Linux /proc; empty elsewhere)."""
    kernels = []
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if uid is not None and entry.stat().st_uid != uid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not any(arg.endswith((b"ipykernel_launcher", b"ipykernel")) for arg in argv):
                continue
            status = (entry / "status").read_text()
        except OSError:  # the process ended while we looked
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                kernels.append((int(entry.name), int(line.split()[1]) * 1024))
    return kernels


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def memory_row() -> tuple[str, str, str]:
    """How much memory is left for kernels: the cgroup limit (Binder: 2 GB per user) or the host's."""
    cgroup, host = cgroup_memory(), _host_available()
    kernels = running_kernels()
    in_kernels = (
        f"; {len(kernels)} kernel(s) running use {_mib(sum(r for _, r in kernels))}" if kernels else ""
    )
    if cgroup is not None:
        limit, in_use, _ = cgroup
        available = limit - in_use if host is None else min(limit - in_use, host)
        detail = f"{_mib(available)} available of a {_mib(limit)} limit (cgroup){in_kernels}"
    elif host is not None:
        available = host
        detail = f"{_mib(available)} available (host, no cgroup limit){in_kernels}"
    else:
        return ("skip", "memory", f"not measured on {sys.platform}")
    if available < KERNEL_PEAK_MIB * 2**20:
        return (
            "warn",
            "memory",
            f"{detail}: a notebook's kernel peaks at ~{KERNEL_PEAK_MIB} MiB; shut down kernels you are not "
            "using (Kernel > Shut Down Kernel)",
        )
    return ("ok", "memory", f"{detail} (a notebook's kernel peaks at ~{KERNEL_PEAK_MIB} MiB)")


def server_extension_row(where: str) -> tuple[str, str, str]:
    enabled = server_extension_enabled()
    if enabled is None:
        return ("skip", "server extension", "jupyter_server is not installed")
    if enabled:
        return ("ok", "server extension", f"{SERVER_EXTENSION} enabled (TCP_NODELAY on kernel websockets)")
    # On Binder (or any repo2docker image of this repository) binder/postBuild enables it: not
    # enabled there means the image was built wrongly. Elsewhere it is optional.
    return (
        "fail" if where != "no" else "warn",
        "server extension",
        f"{SERVER_EXTENSION} not enabled: audio reaches the page later (Nagle); see its module docstring",
    )


def doctor_checks(
    check_model: bool = False, region: str | None = None, profile: str | None = None
) -> list[tuple[str, str, str]]:
    """(status, what, detail) rows: status is "ok", "warn", "fail" or "skip". Never shows secrets."""
    import importlib.metadata as md
    import shutil

    from packaging.requirements import Requirement

    rows: list[tuple[str, str, str]] = []
    py = sys.version_info
    rows.append(
        ("ok" if py >= (3, 12) else "fail", "Python", f"{py.major}.{py.minor}.{py.micro} (needs >= 3.12)")
    )
    # The SDK set must match the pins exactly: mixing versions breaks at run time.
    sdk = {
        "aws-sdk-bedrock-runtime",
        "smithy-core",
        "smithy-http",
        "smithy-aws-core",
        "smithy-aws-event-stream",
        "smithy-json",
        "aws-sdk-signers",
        "awscrt",
    }
    problems, seen = [], []
    for spec in md.requires("nova_nb") or []:
        req = Requirement(spec)
        if req.name not in sdk or req.marker is not None:
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            problems.append(f"{req.name} missing")
            continue
        seen.append(f"{req.name} {version}")
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name} {version} (wants {req.specifier})")
    rows.append(
        ("fail" if problems else "ok", "AWS SDK set", "; ".join(problems) if problems else ", ".join(seen))
    )
    try:
        import boto3

        session = boto3.Session(profile_name=profile)
        creds = session.get_credentials()
        resolved_region = region or session.region_name
    except Exception as exc:  # e.g. an unknown profile
        creds, resolved_region = None, region
        rows.append(("fail", "AWS credentials", f"{type(exc).__name__}: {exc}"))
    else:
        if creds is None:
            rows.append(
                ("warn", "AWS credentials", "none found: notebooks use the offline emulator ('local')")
            )
        else:
            frozen = creds.get_frozen_credentials()
            kind = "temporary" if frozen.token else "long-term"
            rows.append(
                (
                    "ok",
                    "AWS credentials",
                    f"{kind}, access key …{frozen.access_key[-4:]}, from {getattr(creds, 'method', 'boto3')}",
                )
            )
    rows.append(
        (
            "ok" if resolved_region else "warn",
            "AWS region",
            resolved_region or "not set: nova_nb uses us-east-1 (Nova Sonic regions: see the AWS docs)",
        )
    )
    for package, purpose in (
        ("jupyterlab", "JupyterLab"),
        ("ipywidgets", "widgets"),
        ("anywidget", "live mic widget"),
        ("ipywebrtc", "push-to-talk recorder"),
        ("av", "WebM/Opus decoding"),
    ):
        try:
            rows.append(("ok", purpose, f"{package} {md.version(package)}"))
        except md.PackageNotFoundError:
            rows.append(("fail", purpose, f"{package} is not installed"))
    where, binder_detail = binder_status()
    rows.append(("skip" if where == "no" else "ok", "Binder", binder_detail))
    rows.append(server_extension_row(where))
    rows.append(memory_row())
    rows.append(
        (
            "ok",
            "browser microphone",
            "getUserMedia needs https:// or localhost and a click; "
            "use headphones (open speakers make the model interrupt itself)",
        )
    )
    try:
        from .emulator.engine import MoonshineRecognizer

        MoonshineRecognizer().model_dir  # noqa: B018 (raises if the model files are missing)
        rows.append(("ok", "offline speech engine", "Moonshine, Silero VAD and espeak-ng available"))
    except Exception as exc:
        rows.append(
            ("warn", "offline speech engine", f"{exc}; the emulator falls back to its scripted engine")
        )
    rows.append(
        (
            "ok" if shutil.which("chromium") or Path("/usr/bin/chromium").exists() else "skip",
            "chromium (browser tests only)",
            shutil.which("chromium") or "not installed",
        )
    )
    if check_model:
        rows.append(_check_model_access(resolved_region or "us-east-1", profile, creds is not None))
    else:
        rows.append(
            ("skip", "model access", "not checked (add --check-model; needs network and credentials)")
        )
    return rows


def _check_model_access(region: str, profile: str | None, have_credentials: bool) -> tuple[str, str, str]:
    from . import s2s

    if not have_credentials:
        return ("skip", "model access", "no AWS credentials")

    async def probe() -> None:
        options: dict[str, Any] = {"region": region, "open_timeout_s": 10.0}
        if profile:
            options["profile"] = profile
        provider = s2s.new_provider("amazon_nova", **options)
        session = await provider.start_streaming()  # type: ignore[attr-defined]
        await session.close()

    try:
        asyncio.run(probe())
    except s2s.NovaNbError as exc:
        return ("fail", "model access", f"{region}: {exc}")
    model_id = s2s.default_config().model_id  # what the probe opened: the default model
    return ("ok", "model access", f"opened and closed a {model_id} stream in {region}")


def _cmd_doctor(args: argparse.Namespace) -> int:
    rows = doctor_checks(args.check_model, args.region, args.profile)
    marks = {"ok": "ok", "warn": "!!", "fail": "XX", "skip": "--"}
    print(_table([["", "CHECK", "DETAIL"], *[[marks[st], what, detail] for st, what, detail in rows]]))
    return 1 if any(st == "fail" for st, _, _ in rows) else 0


def _add_doctor(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check the set-up: Python, the AWS SDK set, credentials, region, Binder, memory, browser audio",
        description="Check what nova_nb needs: Python >= 3.12, the exact AWS SDK versions, AWS "
        "credentials and region (secrets are never shown), whether this is Binder, whether the "
        "TCP_NODELAY server extension is enabled, the memory left for kernels, the widget packages for "
        "browser audio, the offline speech engine, and with --check-model whether a stream of the default "
        "model can be opened (network; the result names the model).",
        formatter_class=_Formatter,
    )
    parser.add_argument("--check-model", action="store_true", help="open and close a real stream (network)")
    parser.add_argument("--region", default=None, help="AWS region to check")
    parser.add_argument("--profile", default=None, help="AWS profile to check")
    parser.set_defaults(func=_cmd_doctor)


# --------------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------------


def _add_eval(commands: Any) -> None:
    from .analysis.evaluate.cli import DESCRIPTION, add_arguments

    parser = commands.add_parser(
        "eval",
        help="run many utterances × a grid of settings; resumable, one report",
        description=DESCRIPTION,
        formatter_class=_Formatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .analysis.evaluate.cli import run
    from .emulator.engine.testaudio import make_utterance

    # analysis may not import the emulator (a floor below it): the speech for items given as text
    # comes from here, the top floor.
    return run(args, synthesize=make_utterance)


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------

#: The commands, in the order ``--help`` lists them.
COMMANDS: Final[tuple[AddCommand, ...]] = (
    _add_talk,
    _add_eval,
    _add_emulator,
    _add_doctor,
    _add_providers,
    _add_voices,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="nova_nb: real-time speech-to-speech with Amazon Nova Sonic, and its local emulator.",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except NovaNbError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
