"""kubeadm stand-in: the command line (version, init, join, reset).

Only `--config` files are supported for init and join (bootherd uses no
other flags); other flags are refused rather than silently ignored."""

import argparse
import json
import sys

import k8s_versions as kv
from config import ConfigError
from out import PhaseError
from preflight import PreflightFailed


def _ignored(values):
    out = set()
    for v in values or []:
        out |= {x.strip().lower() for x in v.split(",") if x.strip()}
    if "all" in out and len(out) > 1:
        raise ConfigError("ignore-preflight-errors: Invalid value: don't specify individual checks if 'all' is used")
    return out


def main(argv):
    p = argparse.ArgumentParser(prog="kubeadm")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("version")
    v.add_argument("-o", "--output", default="")
    for name in ("init", "join"):
        c = sub.add_parser(name)
        c.add_argument("--config", required=True)
        c.add_argument("--ignore-preflight-errors", action="append")
        c.add_argument("--v", "-v", default="0")
    r = sub.add_parser("reset")
    r.add_argument("-f", "--force", action="store_true")
    r.add_argument("--v", "-v", default="0")
    args = p.parse_args(argv)
    version = kv.own_version()
    if args.cmd == "version":
        if args.output == "short":
            print(f"v{version}")
        else:
            info = {"major": str(version.major), "minor": str(version.minor), "gitVersion": f"v{version}",
                    "gitTreeState": "clean", "goVersion": "standin", "compiler": "gc", "platform": "linux/amd64"}
            print(json.dumps({"clientVersion": info}, indent=2) if args.output == "json"
                  else f"kubeadm version: &version.Info{{Major:\"{version.major}\", Minor:\"{version.minor}\", "
                       f"GitVersion:\"v{version}\", Platform:\"linux/amd64\"}}")
        return 0
    try:
        if args.cmd == "init":
            import init_cmd  # noqa: PLC0415 - each command loads only what it uses
            init_cmd.run(args.config, _ignored(args.ignore_preflight_errors))
        elif args.cmd == "join":
            import join_cmd  # noqa: PLC0415
            join_cmd.run(args.config, _ignored(args.ignore_preflight_errors))
        else:
            import reset_cmd  # noqa: PLC0415
            return reset_cmd.run(args.force)
    except PreflightFailed:
        print("error execution phase preflight: preflight checks failed\nTo see the stack trace of this error "
              "execute with --v=5 or higher", file=sys.stderr)
        return 1
    except PhaseError as e:
        print(f"error execution phase {e.phase}: {e}\nTo see the stack trace of this error execute with --v=5 or "
              f"higher", file=sys.stderr)
        return 1
    except (ConfigError, OSError, ValueError) as e:
        print(f"{e}\nTo see the stack trace of this error execute with --v=5 or higher", file=sys.stderr)
        return 1
    return 0
