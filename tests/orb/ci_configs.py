#!/usr/bin/env python3
"""Checks on the project's own CI configurations beyond their JSON schemas.

    ci_configs.py .circleci/config.yml bitbucket-pipelines.yml

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


def circleci(path):
    ok = True
    cfg = yaml.safe_load(open(path, encoding="utf-8"))
    jobs = cfg.get("jobs") or {}
    ok &= check("circleci: version 2.1 with the jobs test, build_static, orb and release",
                [] if str(cfg.get("version")) == "2.1" and {"test", "build_static", "orb", "release"} <= set(jobs)
                else [f"version {cfg.get('version')}, jobs {sorted(jobs)}"])
    wants = {"test": "scripts/test.sh", "build_static": "scripts/build-static.sh", "orb": "scripts/test-orb.sh",
             "release": "scripts/release.sh"}
    ok &= check("circleci: each job runs its script (test.sh, build-static.sh, test-orb.sh, release.sh)",
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

    entries = {}
    for wf_name, wf in (cfg.get("workflows") or {}).items():
        if not isinstance(wf, dict):
            continue
        for entry in wf.get("jobs") or []:
            name, args = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            entries[(args or {}).get("name", name)] = args or {}
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
        required = rel.get("requires") or []
        for j in ("test", "build_static", "orb"):
            if j not in required:
                problems.append(f"release does not require {j}")
            elif not runs_on(entries.get(j), tag="v1.2.3"):
                problems.append(f"{j} does not run on v tags, so release would never start")
    ok &= check("circleci: release is gated on the release context and needs test, build_static and orb", problems)
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
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 64
    ok = circleci(argv[1])
    ok &= bitbucket(argv[2])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
