#!/usr/bin/env python3
"""Runs one job of a CircleCI config here, step by step, the way CircleCI would, with an orb
injected (as orb-tools/continue injects the packed orb into .circleci/test-deploy.yml).

    run_job.py CONFIG ORB_NAME PACKED_ORB JOB WORKDIR [--shell "bash -eo pipefail"]
               [--map FROM=TO]... [--skip-step NAME]...

- `run` steps (string or map with command, environment, background) run in WORKDIR with the
  shell given (CircleCI's default: bash -eo pipefail, or /bin/sh -e without bash), a BASH_ENV
  file, and this process's environment;
- ORB_NAME/<command> steps expand the orb's command: parameters (defaults, then the step's
  values) replace `<< parameters.x >>`, `\\<<` becomes `<<`, and `when` steps with a
  condition (a literal, or `equal: [a, b]`) are evaluated;
- checkout is a no-op (WORKDIR is the checkout); attach_workspace needs its `at` to exist;
- every FROM in the job's text is replaced by TO first (loopback ports, /tmp paths), so that
  runs on a shared machine do not collide;
- background steps are killed when the job ends.
Exits with the first failing step's code; prints each step's name and output.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

PARAM = re.compile(r"<<\s*parameters\.([A-Za-z0-9_-]+)\s*>>")


def substitute(node, params):
    if isinstance(node, dict):
        return {substitute(k, params): substitute(v, params) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, params) for v in node]
    if isinstance(node, str):
        def repl(m):
            value = params[m.group(1)]
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)
        whole = PARAM.fullmatch(node.strip())
        if whole and not isinstance(params[whole.group(1)], str):
            return params[whole.group(1)]
        return PARAM.sub(repl, node)
    return node


def truthy(condition):
    if isinstance(condition, dict) and "equal" in condition:
        a, b = condition["equal"]
        return str(a) == str(b)
    if isinstance(condition, dict) and "not" in condition:
        return not truthy(condition["not"])
    return bool(condition) and str(condition).lower() not in ("false", "0", "")


class Runner:
    def __init__(self, orb_name, orb, workdir, shell):
        self.orb_name = orb_name
        self.orb = orb
        self.workdir = workdir
        self.shell = shell
        self.background = []
        fd, self.bash_env = tempfile.mkstemp(prefix="bash_env.")
        os.close(fd)

    def run_step(self, step):
        if isinstance(step, str):
            step = {step: {}}
        (kind, args), = step.items()
        args = args or {}
        if kind == "run":
            return self.run(args if isinstance(args, dict) else {"command": args})
        if kind == "checkout":
            print("== checkout (the working directory)")
            return 0
        if kind == "attach_workspace":
            print(f"== attach_workspace at {args['at']}")
            return 0 if os.path.isdir(args["at"]) else 1
        if kind == "when":
            return self.run_steps(args["steps"]) if truthy(args["condition"]) else 0
        if kind == "unless":
            return 0 if truthy(args["condition"]) else self.run_steps(args["steps"])
        if kind.startswith(self.orb_name + "/"):
            command = self.orb["commands"][kind.split("/", 1)[1]]
            params = {k: v.get("default") for k, v in (command.get("parameters") or {}).items()}
            params.update(args)
            missing = [k for k, v in params.items() if v is None]
            if missing:
                print(f"{kind}: missing required parameters {missing}")
                return 64
            return self.run_steps(substitute(command["steps"], params))
        print(f"== {kind}: not something this runner knows; skipped")
        return 0

    def run_steps(self, steps):
        for step in steps:
            code = self.run_step(step)
            if code:
                return code
        return 0

    def run(self, args):
        name = args.get("name") or args["command"].splitlines()[0]
        command = args["command"].replace("\\<<", "<<")
        env = dict(os.environ)
        env["BASH_ENV"] = self.bash_env
        env.update({k: str(v) for k, v in (args.get("environment") or {}).items()})
        fd, script = tempfile.mkstemp(prefix="step.", suffix=".sh")
        with os.fdopen(fd, "w") as f:
            f.write(command)
        cwd = self.workdir
        if args.get("working_directory"):
            cwd = os.path.join(self.workdir, args["working_directory"])
        argv = shlex.split(self.shell) + [script]
        if command.startswith("#!"):
            # CircleCI runs the shell on the file; a shebang line is a comment to it.
            pass
        if args.get("background"):
            print(f"== {name} (background)")
            self.background.append(subprocess.Popen(argv, cwd=cwd, env=env,
                                                    stdout=open(script + ".log", "w"), stderr=subprocess.STDOUT))
            return 0
        print(f"== {name}", flush=True)
        code = subprocess.call(argv, cwd=cwd, env=env)
        if code:
            print(f"== {name}: exited {code}")
        return code

    def close(self):
        for p in self.background:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("orb_name")
    ap.add_argument("packed_orb")
    ap.add_argument("job")
    ap.add_argument("workdir")
    ap.add_argument("--shell", default="bash -eo pipefail")
    ap.add_argument("--map", action="append", default=[])
    ap.add_argument("--skip-step", action="append", default=[])
    a = ap.parse_args()
    text = open(a.config).read()
    for m in a.map:
        old, new = m.split("=", 1)
        text = text.replace(old, new)
    config = yaml.safe_load(text)
    job = config["jobs"][a.job]
    steps = [s for s in job["steps"]
             if not (isinstance(s, dict) and "run" in s and isinstance(s["run"], dict)
                     and s["run"].get("name") in a.skip_step)]
    runner = Runner(a.orb_name, yaml.safe_load(open(a.packed_orb)), a.workdir, a.shell)
    try:
        code = runner.run_steps(steps)
    finally:
        runner.close()
    print(f"== job {a.job}: {'passed' if code == 0 else f'failed ({code})'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
