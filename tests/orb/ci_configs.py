#!/usr/bin/env python3
"""Checks on the project's own CI configurations beyond their JSON schemas.

    ci_configs.py .circleci/config.yml .circleci/test-deploy.yml bitbucket-pipelines.yml

Prints one "PASS ..." / "FAIL ...: why" line per check (scripts/test-orb.sh counts them).
"""
import fnmatch
import os
import re
import sys

import yaml


def check(name, problems):
    problems = [p for p in problems if p]
    print(f"FAIL {name}: " + "; ".join(problems) if problems else f"PASS {name}")
    return not problems


def circle_filter_matches(pattern, value):
    """CircleCI filters: a /regex/ must match the whole value; anything else is literal."""
    pattern = str(pattern)
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        return re.fullmatch(pattern[1:-1], value) is not None
    return pattern == value


def any_match(patterns, value):
    if patterns is None:
        return False
    if not isinstance(patterns, list):
        patterns = [patterns]
    return any(circle_filter_matches(p, value) for p in patterns)


def runs_on(job_entry, tag=None, branch=None):
    """Whether a workflow job entry runs for a tag or a branch push (CircleCI's rules)."""
    filters = (job_entry or {}).get("filters") or {}
    if tag is not None:
        tags = filters.get("tags") or {}
        return any_match(tags.get("only"), tag) and not any_match(tags.get("ignore"), tag)
    branches = filters.get("branches") or {}
    if "only" in branches:
        return any_match(branches["only"], branch) and not any_match(branches.get("ignore"), branch)
    return not any_match(branches.get("ignore"), branch)


def run_commands(job):
    out = []
    for step in (job or {}).get("steps") or []:
        if isinstance(step, dict) and "run" in step:
            run = step["run"]
            out.append(run if isinstance(run, str) else run.get("command", ""))
    return out


def workflow_entries(cfg):
    """{job name as the workflow names it: its arguments}, matrix jobs expanded."""
    entries = {}
    for wf in (cfg.get("workflows") or {}).values():
        if not isinstance(wf, dict):
            continue
        for entry in wf.get("jobs") or []:
            name, args = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            args = args or {}
            matrix = (args.get("matrix") or {}).get("parameters") or {}
            if len(matrix) == 1:
                (param, values), = matrix.items()
                for v in values:
                    entries[str(args.get("name", name)).replace(f"<< matrix.{param} >>", str(v))] = dict(args, _base=name, _value=v)
            else:
                entries[args.get("name", name)] = dict(args, _base=name)
    return entries


def circleci(setup_path, deploy_path):
    ok = True
    setup = yaml.safe_load(open(setup_path, encoding="utf-8"))
    entries = workflow_entries(setup)
    problems = []
    if str(setup.get("version")) != "2.1" or setup.get("setup") is not True:
        problems.append("not a version 2.1 setup configuration (setup: true)")
    for job in ("orb-tools/lint", "orb-tools/pack", "orb-tools/review", "shellcheck/check", "orb-tools/continue"):
        if job not in entries:
            problems.append(f"no {job}")
    review = entries.get("orb-tools/review") or {}
    if review.get("exclude") not in ("", None):
        problems.append(f"the review excludes {review.get('exclude')!r}: RC001 to RC012 must all run")
    cont = entries.get("orb-tools/continue") or {}
    for job in ("orb-tools/lint", "orb-tools/pack", "orb-tools/review", "shellcheck/check"):
        if job not in (cont.get("requires") or []):
            problems.append(f"continue does not wait for {job}")
    if cont.get("config_path", ".circleci/test-deploy.yml") != deploy_path:
        problems.append(f"continue goes on with {cont.get('config_path')}, not {deploy_path}")
    for job in ("orb-tools/lint", "orb-tools/pack", "orb-tools/review"):
        if (entries.get(job) or {}).get("source_dir") != "orb/src":
            problems.append(f"{job} does not read orb/src")
    ok &= check("circleci: config.yml is orb-tools v12's setup workflow (lint, pack, review with every RC, shellcheck, continue)",
                problems)

    cfg = yaml.safe_load(open(deploy_path, encoding="utf-8"))
    jobs = cfg.get("jobs") or {}
    ok &= check("circleci: test-deploy.yml has the jobs test, build_static, integration and release, the orb injected",
                [] if {"test", "build_static", "integration", "release"} <= set(jobs)
                and (cfg.get("orbs") or {}).get("stepsecret") == {}
                else [f"jobs {sorted(jobs)}, orbs {cfg.get('orbs')}"])
    wants = {"test": "scripts/test.sh", "build_static": "scripts/build-static.sh",
             "integration": ".circleci/scripts/openbao-ci.sh", "release": "scripts/release.sh"}
    ok &= check("circleci: each job runs its script (test.sh, build-static.sh, openbao-ci.sh, release.sh)",
                [f"{j} does not run {s}" for j, s in wants.items()
                 if not any(s in c for c in run_commands(jobs.get(j)))])
    problems = []
    for j, job in jobs.items():
        for c in run_commands(job):
            for ref in re.findall(r"(?:\./)?((?:scripts|\.circleci)/[\w./-]+\.sh)", c):
                if not os.path.isfile(ref):
                    problems.append(f"{j} runs {ref}, which does not exist")
    ok &= check("circleci: every script a job runs exists", problems)
    problems = []
    for j, job in jobs.items():
        for step in (job or {}).get("steps") or []:
            if isinstance(step, dict) and "run" in step and not (
                    isinstance(step["run"], dict) and step["run"].get("name")):
                problems.append(f"{j}: a run step has no name")
    ok &= check("circleci: every run step has a name", problems)
    steps_of = lambda j: [s for s in (jobs.get(j) or {}).get("steps") or [] if isinstance(s, dict)]
    ok &= check("circleci: build_static stores dist/ as artifacts and in the workspace",
                [] if any("store_artifacts" in s and str(s["store_artifacts"].get("path", "")).startswith("dist")
                          for s in steps_of("build_static"))
                and any("persist_to_workspace" in s for s in steps_of("build_static"))
                else ["no store_artifacts/persist_to_workspace of dist"])

    entries = workflow_entries(cfg)
    executors = cfg.get("executors") or {}
    integration = [n for n, e in entries.items() if e.get("_base") == "integration"]
    problems = []
    kinds = {}
    for n in integration:
        ex = executors.get(str(entries[n].get("_value"))) or {}
        image = ((ex.get("docker") or [{}])[0] or {}).get("image", "")
        kinds[n] = ("machine-arm" if ex.get("resource_class") == "arm.medium" and "machine" in ex
                    else "machine" if "machine" in ex else image.split(":")[0])
        if not entries[n].get("context"):
            problems.append(f"{n} has no context, so no CIRCLE_OIDC_TOKEN_V2")
        if "build_static" not in (entries[n].get("requires") or []):
            problems.append(f"{n} does not wait for build_static")
    for want in ("cimg/base", "alpine", "machine", "machine-arm"):
        if want not in kinds.values():
            problems.append(f"no integration job on {want}")
    ok &= check("circleci: integration runs on cimg/base, alpine, machine and arm.medium, with the job's OIDC token", problems)

    problems = []
    dev = entries.get("orb-tools/publish") or {}
    if dev.get("pub_type") != "dev" or "dev:alpha" not in str(dev.get("dev_tags", "")):
        problems.append("no orb-tools/publish of dev:alpha")
    if runs_on(dev, tag="v1.2.3") or not runs_on(dev, branch="feature/x"):
        problems.append("the dev publish does not run on branches only")
    for j in ["test"] + integration:
        if j not in (dev.get("requires") or []):
            problems.append(f"the dev publish does not wait for {j}")
    ok &= check("circleci: dev:alpha is published on branches, after every test", problems)

    rel = entries.get("release")
    problems = []
    if rel is None:
        problems.append("release is in no workflow")
    else:
        if not runs_on(rel, tag="v1.2.3"):
            problems.append("release does not run on the tag v1.2.3")
        if runs_on(rel, tag="1.2.3") or runs_on(rel, tag="nightly"):
            problems.append("release runs on tags that do not start with v")
        for branch in ("main", "feature/x"):
            if runs_on(rel, branch=branch):
                problems.append(f"release runs on the branch {branch}")
    ok &= check("circleci: release runs on v* tags only (filters: tags only, branches ignore)", problems)
    problems = []
    if rel is not None:
        ctx = rel.get("context")
        if not ctx or (isinstance(ctx, list) and "release" not in ctx) or (isinstance(ctx, str) and ctx != "release"):
            problems.append(f"release's context is {ctx!r}, not release")
        for j in ["test", "build_static"] + integration:
            if j not in (rel.get("requires") or []):
                problems.append(f"release does not require {j}")
            elif not runs_on(entries.get(j), tag="v1.2.3"):
                problems.append(f"{j} does not run on v tags, so release would never start")
    ok &= check("circleci: the semver release is gated on the release context and needs every test", problems)
    return ok


def bitbucket(path):
    ok = True
    cfg = yaml.safe_load(open(path, encoding="utf-8"))
    pipelines = cfg.get("pipelines") or {}

    def steps(items):
        out = []
        for item in items or []:
            if "step" in item:
                out.append(item["step"])
            elif "parallel" in item:
                par = item["parallel"]
                par = par.get("steps", []) if isinstance(par, dict) else par
                out += [p["step"] for p in par if "step" in p]
        return out

    def scripts(step):
        return "\n".join(str(s) for s in step.get("script") or [])

    default = steps(pipelines.get("default"))
    ok &= check("bitbucket: the default pipeline runs scripts/test.sh",
                [] if any("scripts/test.sh" in scripts(s) for s in default) else ["no scripts/test.sh"])
    main = steps((pipelines.get("branches") or {}).get("main"))
    ok &= check("bitbucket: main runs the tests and the static build",
                [] if any("scripts/test.sh" in scripts(s) for s in main)
                and any("scripts/build-static.sh" in scripts(s) for s in main) else ["missing on main"])
    tags = pipelines.get("tags") or {}
    tag_keys = [k for k in tags if fnmatch.fnmatchcase("v1.2.3", k)]
    ok &= check("bitbucket: a tags pipeline matches v1.2.3 and not 1.2.3",
                [] if tag_keys and not any(fnmatch.fnmatchcase("1.2.3", k) for k in tags) else [f"tags {list(tags)}"])
    release = steps(tags.get(tag_keys[0])) if tag_keys else []
    problems = []
    static = [s for s in release if "scripts/build-static.sh" in scripts(s)]
    if not static or not any(str(a).startswith("dist") for a in (static[0].get("artifacts") or [])):
        problems.append("no static build keeping dist/ as artifacts")
    if not any(("docker build" in scripts(s) or "build-image.sh" in scripts(s) or "release.sh" in scripts(s)) and "docker" in (s.get("services") or []) for s in release):
        problems.append("no step building the pipe image with the docker service")
    prod = [i for i, s in enumerate(release) if s.get("deployment") == "production"]
    if not prod:
        problems.append("no deployment: production step")
    elif prod[0] != len(release) - 1:
        problems.append("the production deployment is not the last step")
    ok &= check("bitbucket: v* tags build static, build the pipe image, then deploy to production", problems)
    # One release script: the production step runs it, and repeats none of its steps.
    problems = []
    last = release[-1] if release else {}
    if "scripts/release.sh" not in scripts(last):
        problems.append("the production step does not run scripts/release.sh")
    for s in release:
        for word in ("docker build", "docker push", "sha256sum", "orb publish", "/downloads"):
            if word in scripts(s):
                problems.append(f"a step repeats the release's own work: {word}")
    ok &= check("bitbucket: the release is scripts/release.sh, its steps not repeated", problems)
    return ok


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 64
    ok = circleci(argv[1], argv[2])
    ok &= bitbucket(argv[3])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
