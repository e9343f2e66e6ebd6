"""LibreOffice conversion worker, run by the system Python that has ``uno``.

This file is executed as a script by Debian's ``/usr/bin/python3`` (the only
interpreter that can import LibreOffice's ``uno`` module), never imported by the
service. It starts one private ``soffice`` (its own user profile, a named pipe
for UNO), then answers conversion requests read as JSON lines on stdin with JSON
lines on stdout. The parent (``convert.py``) owns timeouts: if a request takes
too long it kills this process group, which takes soffice with it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import uno  # type: ignore[import-not-found]
from com.sun.star.beans import PropertyValue  # type: ignore[import-not-found]
from com.sun.star.connection import NoConnectException  # type: ignore[import-not-found]

# UNO constants, spelled out to avoid importing more of the bridge.
MACRO_NEVER_EXECUTE = 0  # com.sun.star.document.MacroExecMode.NEVER_EXECUTE
UPDATE_NO = 0  # com.sun.star.document.UpdateDocMode.NO_UPDATE


def props(**kwargs: object) -> tuple[PropertyValue, ...]:
    out = []
    for key, value in kwargs.items():
        p = PropertyValue()
        p.Name = key
        p.Value = value
        out.append(p)
    return tuple(out)


def reply(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def start_office(soffice: str, profile_dir: str, pipe_name: str) -> subprocess.Popen[bytes]:
    cmd = [
        soffice,
        "--headless",
        "--invisible",
        "--nocrashreport",
        "--nodefault",
        "--nologo",
        "--nofirststartwizard",
        "--norestore",
        "--nolockcheck",
        f"--accept=pipe,name={pipe_name};urp;StarOffice.ComponentContext",
        "-env:UserInstallation=" + uno.systemPathToFileUrl(profile_dir),
    ]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sys.stderr)


def connect(pipe_name: str, office: subprocess.Popen[bytes], startup_timeout: float) -> object:
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + startup_timeout
    while True:
        try:
            ctx = resolver.resolve(f"uno:pipe,name={pipe_name};urp;StarOffice.ComponentContext")
            return ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        except NoConnectException:
            if office.poll() is not None:
                raise RuntimeError(f"soffice exited with status {office.returncode} during start-up") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def office_pid(launcher_pid: int) -> int:
    """The pid of soffice.bin, which the oosplash launcher starts as its child (from /proc)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == launcher_pid and comm == "soffice.bin":
            return int(entry)
    return launcher_pid


def bridge_alive(desktop: object) -> bool:
    """Whether soffice still answers over UNO (after a failed conversion)."""
    try:
        desktop.getComponents()  # type: ignore[attr-defined]
    except Exception:  # any failure of the bridge means soffice is gone
        return False
    return True


def convert(desktop: object, request: dict[str, object]) -> dict[str, object]:
    src = uno.systemPathToFileUrl(str(request["src"]))
    dst = uno.systemPathToFileUrl(str(request["dst"]))
    doc = desktop.loadComponentFromURL(  # type: ignore[attr-defined]
        src,
        "_blank",
        0,
        props(Hidden=True, ReadOnly=True, MacroExecutionMode=MACRO_NEVER_EXECUTE, UpdateDocMode=UPDATE_NO),
    )
    if doc is None:
        return {"ok": False, "kind": "load", "error": "document could not be loaded"}
    try:
        filter_data = props(**dict(request.get("filter_data", {})))  # type: ignore[call-overload]
        doc.storeToURL(  # type: ignore[attr-defined]
            dst,
            props(
                FilterName=str(request.get("filter", "writer_pdf_Export")),
                FilterData=uno.Any("[]com.sun.star.beans.PropertyValue", filter_data),
            ),
        )
    finally:
        doc.close(True)  # type: ignore[attr-defined]
    return {"ok": True}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--soffice", required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--pipe", required=True)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    args = parser.parse_args()

    office = start_office(args.soffice, args.profile, args.pipe)

    def stop(*_: object) -> None:
        # soffice.bin is started by the oosplash launcher in our process group: take the whole
        # group down so no soffice outlives its worker.
        if office.poll() is None:
            office.kill()
        try:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        finally:
            os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        return serve(office, args.pipe, args.startup_timeout)
    finally:
        # Whatever ends this worker (its parent gone while soffice was starting, a reply that cannot
        # be written, an error of ours), soffice goes with it.
        stop()


def serve(office: subprocess.Popen[bytes], pipe: str, startup_timeout: float) -> int:
    """Answer conversion requests from stdin until it closes."""
    try:
        desktop = connect(pipe, office, startup_timeout)
    except Exception as exc:  # report start-up failure to the parent, then exit
        reply({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    reply({"ready": True, "pid": office_pid(office.pid)})

    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = convert(desktop, request)
        except Exception as exc:  # every failure goes back to the parent, which decides
            alive = office.poll() is None and bridge_alive(desktop)
            result = {"ok": False, "kind": "office" if alive else "crashed", "error": f"{type(exc).__name__}: {exc}"}
            result["id"] = request.get("id")
            reply(result)
            if not alive:
                break
            continue
        result["id"] = request.get("id")
        reply(result)
    return 0

if __name__ == "__main__":
    sys.exit(main())
