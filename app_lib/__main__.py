"""Command line: `python -m app_lib serve | dev | reset | seed <feature> [--file PATH] | worker`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app_lib.common.config import get_settings
from app_lib.common.errors import AppError
from app_lib.common.logging import configure_logging


def _uvicorn(args: argparse.Namespace, **options: Any) -> None:
    """The app factory under uvicorn, as `serve` and `dev` run it (our own logging and access
    line; `options` adds reload and the like)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "app_lib.main:app_factory",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        **options,
    )


def _serve(args: argparse.Namespace) -> int:
    _uvicorn(args)
    return 0


def _dev(args: argparse.Namespace) -> int:
    """Serve with code reload. The embedded database belongs to this process, not to the app
    processes that reload, so its data stays put across reloads (and, with DATA_DIR, restarts)."""
    import os

    import app_lib
    from app_lib.common.embedded import EmbeddedServer

    settings = get_settings()
    embedded = None
    if settings.embedded:
        embedded = EmbeddedServer(Path(settings.data_dir) if settings.data_dir else None)
        os.environ["EMBEDDED_URL"] = embedded.start()
        embedded.watch(lambda: None)  # a dead database is started again; the app re-prepares it
    try:
        _uvicorn(
            args,
            reload=True,
            reload_dirs=[str(Path(app_lib.__file__).parent), *args.reload_dir],
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _reset(args: argparse.Namespace) -> int:
    """Delete the embedded database's data directory (refused while a database uses it)."""
    import shutil

    from app_lib.common.embedded import data_dir_in_use

    settings = get_settings()
    if not settings.data_dir:
        print("reset: DATA_DIR is empty: the embedded database keeps nothing", file=sys.stderr)
        return 0
    path = Path(settings.data_dir)
    if not path.exists():
        print(f"reset: {path} does not exist: nothing to wipe", file=sys.stderr)
        return 0
    if data_dir_in_use(path):
        print(f"reset: {path} is in use by a running app; stop it first", file=sys.stderr)
        return 1
    shutil.rmtree(path)
    print(f"reset: removed {path}", file=sys.stderr)
    return 0


def _seed(args: argparse.Namespace) -> int:
    from app_lib.common import feature as features
    from app_lib.common.data import table_registry

    settings = get_settings()
    if settings.embedded:
        print(
            "seed: DYNAMODB_HOST is 'embedded', whose data lives inside `make run`; "
            "point DYNAMODB_HOST at a server (or leave it empty for AWS)",
            file=sys.stderr,
        )
        return 2
    found = {feature.name: feature for feature in features.discover()}
    feature = found.get(args.feature)
    if feature is None or feature.seed is None:
        print(f"seed: no feature {args.feature!r} with seed data", file=sys.stderr)
        return 2
    host = settings.dynamodb_host or None
    table_registry.configure(settings, host)
    if host is not None:
        table_registry.create_tables(feature.tables)
    try:
        written = feature.seed(args.file)
    except AppError as error:
        print(f"seed: {error.detail}", file=sys.stderr)
        for line in error.extra.get("problems", []):
            print(f"  {line}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"seed: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"seeded {written} items into {args.feature}", file=sys.stderr)
    return 0


def _token(args: argparse.Namespace) -> int:
    """A token of the dev issuer (AUTH_MODE=dev), on stdout alone."""
    from app_lib.common.auth import DevIssuer

    settings = get_settings()
    mode = settings.effective_auth_mode
    if mode != "dev":
        print(f"token: AUTH_MODE is {mode!r}; tokens come from your issuer", file=sys.stderr)
        return 2
    if not settings.data_dir:
        print("token: DATA_DIR is empty, so the app's dev key lives in its memory", file=sys.stderr)
        return 2
    print(DevIssuer.from_settings(settings).sign(args.sub, args.scope, args.ttl))
    return 0


def _new_feature(args: argparse.Namespace) -> int:
    from app_lib.common.scaffold import ScaffoldError, generate, make_spec

    root = Path(args.root)
    try:
        spec = make_spec(args.name, args.field, args.id, args.singular)
        written = generate(spec, root)
    except ScaffoldError as error:
        print(f"new-feature: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"  wrote {path.relative_to(root)}", file=sys.stderr)
    print(
        f"new-feature: {spec.plural} is served at /api/v1/{spec.plural}; run its tests with "
        f"`.venv/bin/python -m pytest tests/features/{spec.plural}`",
        file=sys.stderr,
    )
    return 0


def _feature_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Each feature's own sub-commands (`Feature.commands`); each sets `run=` to a function of
    the parsed arguments that returns the exit code."""
    from app_lib.common import feature as features

    for feature in features.discover():
        if feature.commands is not None:
            feature.commands(commands)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app_lib")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API with uvicorn")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)
    dev = commands.add_parser(
        "dev", help="serve with code reload; the embedded database survives reloads"
    )
    dev.add_argument("--host")
    dev.add_argument("--port", type=int)
    dev.add_argument(
        "--reload-dir", action="append", default=[], help="another folder to watch for changes"
    )
    dev.set_defaults(run=_dev)
    reset = commands.add_parser("reset", help="wipe the embedded database's data (DATA_DIR)")
    reset.set_defaults(run=_reset)
    seed = commands.add_parser("seed", help="load a feature's data file into its table")
    seed.add_argument("feature")
    seed.add_argument("--file", type=Path, help="CSV file (default: the bundled data)")
    seed.set_defaults(run=_seed)
    token = commands.add_parser(
        "token",
        help="print a token of the dev issuer (AUTH_MODE=dev), e.g. for curl",
        description="Signs with the key in DATA_DIR/auth (the one `make run` verifies with).",
    )
    token.add_argument("--sub", required=True, help="the caller (a user id)")
    token.add_argument(
        "--scope", default="", help='space-separated scopes, e.g. "passengers:write" or admin'
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds it is valid (negative: already expired)"
    )
    token.set_defaults(run=_token)
    new = commands.add_parser(
        "new-feature",
        help="generate a CRUD feature: routes, DTOs, table, tests, CloudFormation table",
        description="Writes app_lib/features/NAME, tests/features/NAME and NAME's table, flag "
        "and grant in cloudformation/backend.yaml. Types: str, int, float, bool, list[int], "
        "list[float], list[str]; a '?' after the type allows null; ':index' makes a GSI that "
        "serves ?FIELD= as a Query.",
    )
    new.add_argument("name", help="the feature and table name, plural (e.g. students)")
    new.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME:TYPE[:index]",
        help="a field (repeat), e.g. --field last_name:str:index --field 'grades:list[int]'",
    )
    new.add_argument(
        "--id", metavar="NAME:str|int", help="the hash key (default: <singular>_id:str)"
    )
    new.add_argument("--singular", help="one item's name (default: NAME without its final s)")
    new.add_argument("--root", default=".", help="the project folder (default: here)")
    new.set_defaults(run=_new_feature)
    _feature_commands(commands)
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        code: int = args.run(args)
    except AppError as error:
        # The database or the queue is away (or refused us): one line, no traceback.
        where = settings.dynamodb_host or "AWS"
        print(f"{args.command}: {error.detail} ({where})", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before the server took over its signals: quietly
        sys.exit(130)
