"""`hermes adapter build | push | list | activate | rollback`: adapters through the admin API.

`build` compiles an adapter from `adapters_wasm/` (or a directory of your own
holding a `main.zig`) with the pinned Zig; `--version` builds it under another
manifest version, so a new release of an adapter can be pushed from the same
source. The other commands call `/admin/v1/adapters` with the admin token
(`--token` or `HERMES_ADMIN_TOKEN`) at `--url` (or `HERMES_URL`, else the
configured API address).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

REPO_ADAPTERS = Path(__file__).resolve().parent.parent / "adapters_wasm"
_VERSION = re.compile(r'(\.version\s*=\s*")([^"]*)(")')


def _build_script(src: Path) -> Any:
    spec = importlib.util.spec_from_file_location("hermes_adapter_build", src / "build.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"hermes adapter build: no build.py in {src}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_adapter(target: str, *, version: str | None, out: Path,
                  src: Path = REPO_ADAPTERS) -> Path:
    """Build `target` (an adapter name in `src`, or a directory with a main.zig) to
    `<out>/<name>-<version>.wasm`; return the path."""
    given = Path(target)
    adapter_dir = given if (given / "main.zig").is_file() else src / target
    if not (adapter_dir / "main.zig").is_file():
        raise SystemExit(f"hermes adapter build: no adapter {target!r} (no main.zig)")
    name = adapter_dir.name
    main = (adapter_dir / "main.zig").read_text()
    found = _VERSION.search(main)
    if found is None:
        raise SystemExit(f"hermes adapter build: {adapter_dir}/main.zig has no manifest .version")
    final_version = version or found.group(2)
    script = _build_script(src)
    with tempfile.TemporaryDirectory(prefix="hermes-adapter-") as tmp:
        root = Path(tmp)
        shutil.copytree(src / "support", root / "support")
        shutil.copytree(adapter_dir, root / name)
        if version is not None:
            (root / name / "main.zig").write_text(
                _VERSION.sub(lambda m: m.group(1) + version + m.group(3), main, count=1))
        # Share the compiler's cache with the tree's own builds: only what changed recompiles.
        (src / ".build").mkdir(exist_ok=True)
        (root / ".build").symlink_to(src / ".build", target_is_directory=True)
        built = root / "out"
        try:
            script.build(root, built, [name], force=True, log=lambda _line: None)
        except script.BuildError as exc:
            raise SystemExit(str(exc)) from None
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}-{final_version}.wasm"
        shutil.copyfile(built / f"{name}.wasm", path)
    return path


# --- the admin API ---


class Client:
    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=60.0,
                                 headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        r = self.http.request(method, f"/admin/v1/adapters{path}", **kwargs)
        body = r.json() if r.content else {}
        if r.status_code >= 400:
            raise SystemExit(f"hermes adapter: {r.status_code} {body.get('code', '')}: "
                             f"{body.get('detail', r.text)}")
        return dict(body)


def _client(args: argparse.Namespace) -> Client:
    token = args.token or os.environ.get("HERMES_ADMIN_TOKEN")
    if not token:
        raise SystemExit("hermes adapter: give --token or set HERMES_ADMIN_TOKEN "
                         "(from `hermes admin-token`)")
    url = args.url or os.environ.get("HERMES_URL")
    if not url:
        from hermes.settings import load_settings

        url = load_settings(config_file=args.config).api_url
    return Client(url, token)


def _golden_for(wasm: Path) -> Path | None:
    """adapters_wasm/<name>/golden.json for a module built from there, found by the
    manifest's name."""
    from hermes import _core

    try:
        name = _core.AdapterRuntime().load(wasm.read_bytes()).name
    except _core.AdapterError:
        return None  # the server says why
    path = REPO_ADAPTERS / name / "golden.json"
    return path if path.is_file() else None


def _print(args: argparse.Namespace, body: dict[str, Any], line: str) -> None:
    print(json.dumps(body, indent=2) if args.json else line)


def cmd_build(args: argparse.Namespace) -> int:
    path = build_adapter(args.target, version=args.version, out=Path(args.out))
    print(path)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    wasm = Path(args.file)
    golden = None if args.no_golden else (Path(args.golden) if args.golden
                                          else _golden_for(wasm))
    files: dict[str, Any] = {"module": (wasm.name, wasm.read_bytes(), "application/wasm")}
    if golden is not None:
        files["golden"] = (golden.name, golden.read_bytes(), "application/json")
    params = {k: v for k, v in (("name", args.name), ("version", args.version)) if v}
    body = _client(args).call("POST", "/", files=files, params=params)
    _print(args, body, f"{body['name']} {body['version']} {body['sha256']} {body['status']} "
           f"(golden {body['golden'].get('status')}, smoke {body['smoke'].get('status')})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    body = _client(args).call("GET", "/")
    if args.json:
        _print(args, body, "")
        return 0
    for adapter in body["data"]:
        live: dict[str, list[str]] = {}
        for p in adapter["live"]:
            live.setdefault(p["sha256"], []).append(p["role"])
        print(adapter["name"])
        for v in adapter["versions"]:
            where = live.get(v["sha256"], [])
            roles = ", ".join(f"{n} {r}" for r, n in sorted(
                {r: where.count(r) for r in where}.items()))
            print(f"  {v['version']:<14} {v['sha256'][:12]}  {v['status']:<11}"
                  f"{' built-in' if v['builtin'] else '         '}"
                  f"  {('live on ' + roles) if roles else ''}")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    key = "sha256" if re.fullmatch(r"[0-9a-f]{64}", args.version) else "version"
    body = _client(args).call("POST", f"/{args.name}/activate",
                              json={key: args.version, "force": args.force})
    _print(args, body, f"{body['name']} {body['version']} ({body['sha256'][:12]}) is active"
           + ("" if body["changed"] else " (it already was)"))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    body = _client(args).call("POST", f"/{args.name}/rollback")
    _print(args, body, f"{body['name']} rolled back to {body['version']} "
           f"({body['sha256'][:12]})")
    return 0


def add_parser(sub: Any) -> None:
    adapter = sub.add_parser("adapter", help="build, upload and deploy provider adapters")
    cmds = adapter.add_subparsers(dest="adapter_command", required=True, metavar="COMMAND")

    def api(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--url", help="the API (default $HERMES_URL, else the configured one)")
        p.add_argument("--token", help="admin token (default $HERMES_ADMIN_TOKEN)")
        p.add_argument("--json", action="store_true", help="print the API's answer as JSON")
        return p

    b = cmds.add_parser("build", help="compile an adapter to <out>/<name>-<version>.wasm")
    b.add_argument("target", help="adapter name in adapters_wasm/, or a directory with main.zig")
    b.add_argument("--version", help="build under this manifest version instead of the source's")
    b.add_argument("--out", default=".", help="output directory (default: here)")
    b.set_defaults(func=cmd_build)

    p = api(cmds.add_parser("push", help="upload a module (validated, stored, not activated)"))
    p.add_argument("file", help="the .wasm")
    p.add_argument("--golden", help="golden vectors JSON (default: adapters_wasm/<name>/"
                                    "golden.json when there is one)")
    p.add_argument("--no-golden", action="store_true", help="upload without golden vectors")
    p.add_argument("--name", help="fail unless the manifest has this name")
    p.add_argument("--version", help="fail unless the manifest has this version")
    p.set_defaults(func=cmd_push)

    api(cmds.add_parser("list", help="versions, their status and where each is live")
        ).set_defaults(func=cmd_list)

    a = api(cmds.add_parser("activate", help="make a version active on every process"))
    a.add_argument("name")
    a.add_argument("version", help="a version, or a sha256")
    a.add_argument("--force", action="store_true", help="activate even a quarantined version")
    a.set_defaults(func=cmd_activate)

    r = api(cmds.add_parser("rollback", help="return to the version active before"))
    r.add_argument("name")
    r.set_defaults(func=cmd_rollback)

