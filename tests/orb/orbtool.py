#!/usr/bin/env python3
"""The orb's packer and its review checks, for scripts/test-orb.sh (no circleci CLI here).

    orbtool.py pack SRC OUT [VERSION ARCH=SHA256...]
                                     pack SRC (orb-tools layout) into one orb file; with a
                                     release's version and digests written into install.sh
    orbtool.py pin SCRIPT OUT VERSION ARCH=SHA256...
                                     a copy of install.sh with those digests written in
    orbtool.py usages SRC OUTDIR     write each example's `usage` to OUTDIR/<example>.yml
    orbtool.py review SRC CARGO_TOML print one "PASS ..." / "FAIL ...: why" line per check
    orbtool.py selftest SRC CARGO_TOML  breaks copies of SRC one way at a time; each must be
                                     caught by the check that is about it

Packing follows `circleci orb pack`: the YAML files at the top of SRC (@orb.yml) merge at the
top level; each folder holding .yml files becomes a key (commands, jobs, executors, examples)
whose entries are the files' names without .yml; `<<include(PATH)>>`, the whole value or inside a
longer string, is replaced by the content of SRC/PATH with each `<<` escaped as `\\<<`. Two
includes in one value, or a file outside SRC, are errors (circleci rejects both).

Review rules: orb-tools' `review` job (its review.bats) names these; CircleCI's numbering is used
where the rule is theirs. RC006/RC007 (source_url/home_url answer 200) need the network, which
this machine does not have: the URLs are checked to be well-formed https URLs instead.
  RC001 display.source_url is set            RC002 every component has a description
  RC003 at least one usage example           RC004 example file names do not contain "example"
  RC005 the orb description is detailed (64+ characters)
  RC008 every run step is a map with a name  RC009 run commands over 64 characters are includes
  RC010 component file names and parameter keys are snake_case
and, from the issue (its own numbering differs from orb-tools'; interpreted as follows):
  - display.home_url is set (the issue's RC012);
  - descriptions are written as plain sentences: they do not start with "This command", "This
    job", "This executor", "This orb" or "This example" (the issue's RC005), and no
    description merely repeats the component's or parameter's name (the issue's RC009);
  - every parameter has a description too ("a description on everything");
  - the three examples the issue asks for exist (Vault via OIDC, AWS via OIDC, an age file).
Plus checks that circleci itself would only make at run time: every << parameters.x >> is
declared where it is used, enum defaults are in their enum, defaults match their type, steps
that call the orb's own commands pass declared parameters and every required one, examples
call existing components with valid parameters, each script's PARAM_* variables are exactly
the ones its run step sets, nothing writes to $BASH_ENV, and the install version defaults to
Cargo.toml's version.
"""
import os
import re
import sys

import yaml

COMPONENT_DIRS = ("commands", "jobs", "executors", "examples")
INCLUDE = re.compile(r"<<\s*include\(([^)]*)\)\s*>>")
PARAM_REF = re.compile(r"<<\s*parameters\.([A-Za-z0-9_-]+)\s*>>")
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
PARAM_TYPES = {"string", "boolean", "integer", "enum", "executor", "steps", "env_var_name"}
BUILTIN_STEPS = {"run", "checkout", "when", "unless", "setup_remote_docker", "save_cache",
                 "restore_cache", "store_artifacts", "store_test_results", "persist_to_workspace",
                 "attach_workspace", "add_ssh_keys"}
MAX_INLINE = 64  # orb-tools' default max_command_length


class PackError(Exception):
    pass


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve_includes(node, src, where, pins=None):
    """`circleci orb pack`'s rules: one <<include(PATH)>> per string, alone or inside a longer
    value (it is replaced in place); PATH inside SRC; every `<<` of the included file is
    escaped as `\\<<`, so that CircleCI does not read a script's `<<` as a parameter."""
    if isinstance(node, dict):
        return {k: resolve_includes(v, src, f"{where}.{k}", pins) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_includes(v, src, f"{where}[{i}]", pins) for i, v in enumerate(node)]
    if isinstance(node, str) and "<<" in node and "include(" in node:
        matches = list(INCLUDE.finditer(node))
        if len(matches) > 1:
            raise PackError(f"{where}: more than one include in one value")
        if not matches:
            raise PackError(f"{where}: a malformed include")
        m = matches[0]
        rel = m.group(1).strip()
        path = os.path.normpath(os.path.join(src, rel))
        if os.path.commonpath([path, os.path.abspath(src)]) != os.path.abspath(src):
            raise PackError(f"{where}: include outside the orb source: {rel}")
        if not os.path.isfile(path):
            raise PackError(f"{where}: included file not found: {rel}")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if pins:
            text = pin(text, pins)
        text = text.replace("<<", "\\<<")
        return node[: m.start()] + text + node[m.end():]
    return node


PIN_LINE = re.compile(r'^(pinned_(?:version|sha256_[a-z0-9_]+))=""$', re.M)


def pin(text, pins):
    """Writes a release's version and digests into install.sh's pinned_* lines."""
    def repl(m):
        key = m.group(1)
        return f'{key}="{pins[key]}"' if key in pins else m.group(0)
    return PIN_LINE.sub(repl, text)


def parse_pins(args):
    """VERSION ARCH=SHA256...  ->  {"pinned_version": ..., "pinned_sha256_ARCH": ...}"""
    if not args:
        return None
    pins = {"pinned_version": args[0]}
    for a in args[1:]:
        arch, _, digest = a.partition("=")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise PackError(f"not a sha256 digest for {arch}: {digest!r}")
        pins[f"pinned_sha256_{arch}"] = digest
    return pins


def pack(src, pins=None):
    src = os.path.abspath(src)
    orb = {}
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if os.path.isfile(path) and name.endswith((".yml", ".yaml")):
            data = load(path) or {}
            if not isinstance(data, dict):
                raise PackError(f"{name}: not a YAML map")
            orb.update(resolve_includes(data, src, name, pins))
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if not os.path.isdir(path):
            continue
        files = sorted(f for f in os.listdir(path) if f.endswith((".yml", ".yaml")))
        if not files:
            continue  # scripts/ and the like
        if name in orb:
            raise PackError(f"{name}/ clashes with the top-level key {name}")
        section = {}
        for f in files:
            key = os.path.splitext(f)[0]
            data = load(os.path.join(path, f))
            section[key] = resolve_includes(data, src, f"{name}/{f}", pins)
        orb[name] = section
    return orb


class Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _str)


def dump(data, out):
    with open(out, "w", encoding="utf-8") as f:
        yaml.dump(data, f, Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True)


# ---------------------------------------------------------------- review

class Review:
    def __init__(self):
        self.results = []

    def check(self, name, problems):
        problems = [p for p in problems if p]
        self.results.append((name, problems))
        if problems:
            print(f"FAIL {name}: " + "; ".join(problems))
        else:
            print(f"PASS {name}")


def components(src):
    """(kind, name, path, data) for every component file, @orb.yml excluded."""
    out = []
    for kind in COMPONENT_DIRS:
        d = os.path.join(src, kind)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f.endswith((".yml", ".yaml")):
                out.append((kind, os.path.splitext(f)[0], f"{kind}/{f}", load(os.path.join(d, f))))
    return out


def walk_strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk_strings(k)
            yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)
    elif isinstance(node, str):
        yield node


def steps_of(data):
    """Every step, descending into when/unless blocks."""
    out = []

    def visit(steps):
        for step in steps or []:
            out.append(step)
            if isinstance(step, dict):
                for key in ("when", "unless"):
                    if isinstance(step.get(key), dict):
                        visit(step[key].get("steps"))

    visit((data or {}).get("steps"))
    return out


def run_steps(data):
    return [s["run"] for s in steps_of(data) if isinstance(s, dict) and "run" in s]


def is_sentence_description(text):
    return not re.match(r"\s*this\s+(command|job|executor|orb|example)\b", text, re.I)


def type_ok(ptype, default):
    if ptype in ("string", "env_var_name", "enum", "executor"):
        return isinstance(default, str)
    if ptype == "boolean":
        return isinstance(default, bool)
    if ptype == "integer":
        return isinstance(default, int) and not isinstance(default, bool)
    return True


def call_problems(where, call, params, target):
    """A call of a component with `call` as arguments against its declared `params`."""
    problems = []
    call = call or {}
    reserved = {"name", "context", "filters", "requires", "matrix", "type", "pre-steps", "post-steps"}
    for key in call:
        if key not in params and key not in reserved:
            problems.append(f"{where}: {target} has no parameter {key}")
    for pname, p in params.items():
        if "default" not in (p or {}) and pname not in call:
            problems.append(f"{where}: {target} needs its parameter {pname}")
    return problems


def review(src, cargo_toml):
    r = Review()
    orb_meta = load(os.path.join(src, "@orb.yml")) or {}
    comps = components(src)
    display = orb_meta.get("display") or {}
    url = re.compile(r"^https://[^\s/]+(/\S*)?$")

    # Packing (includes resolve, no clashes)
    try:
        packed = pack(src)
        r.check("the orb packs: every <<include()>> is a whole string naming a file under orb/src", [])
    except PackError as e:
        packed = None
        r.check("the orb packs: every <<include()>> is a whole string naming a file under orb/src", [str(e)])

    r.check("@orb.yml: version 2.1", [] if str(orb_meta.get("version")) == "2.1" else ["version is not 2.1"])
    r.check("RC001 display.source_url is set", [] if display.get("source_url") else ["no display.source_url"])
    r.check("issue RC012: display.home_url is set", [] if display.get("home_url") else ["no display.home_url"])
    r.check("RC006/RC007 (offline): source_url and home_url are well-formed https URLs",
            [f"{k} is not an https URL: {display.get(k)!r}" for k in ("source_url", "home_url")
             if not url.match(str(display.get(k) or ""))])

    desc = orb_meta.get("description") or ""
    r.check("RC005 the orb description is detailed (64+ characters)",
            [] if len(desc.strip()) >= 64 else [f"only {len(desc.strip())} characters"])

    r.check("RC002 every component has a description",
            [f"{path} has no description" for kind, name, path, data in comps
             if not isinstance((data or {}).get("description"), str) or not data["description"].strip()])

    problems = []
    for kind, name, path, data in comps:
        for pname, p in ((data or {}).get("parameters") or {}).items():
            if not isinstance(p, dict) or not str(p.get("description") or "").strip():
                problems.append(f"{path}: parameter {pname} has no description")
    r.check("every parameter has a description", problems)

    problems = []
    for kind, name, path, data in comps:
        texts = [(name, (data or {}).get("description") or "")]
        texts += [(pname, (p or {}).get("description") or "")
                  for pname, p in ((data or {}).get("parameters") or {}).items()]
        for label, text in texts:
            if not is_sentence_description(text):
                problems.append(f"{path}: the description of {label} starts with 'This ...'")
            normal = re.sub(r"[\s_.-]+", " ", text).strip().lower()
            if normal == re.sub(r"[_-]+", " ", label).lower():
                problems.append(f"{path}: the description of {label} only repeats its name")
    if not is_sentence_description(desc):
        problems.append("@orb.yml: the description starts with 'This orb'")
    r.check("issue RC005/RC009: descriptions are plain sentences, not 'This command...' nor the name repeated",
            problems)

    examples = [(name, data) for kind, name, path, data in comps if kind == "examples"]
    r.check("RC003 the orb has usage examples", [] if examples else ["no examples/*.yml"])
    r.check("RC004 example file names are descriptive (no 'example' in them)",
            [f"examples/{n}.yml" for n, _ in examples if "example" in n.lower()])
    r.check("every example has a description and a version 2.1 usage",
            [f"examples/{n}.yml has no usage" for n, d in examples
             if not isinstance((d or {}).get("usage"), dict)
             or str(d["usage"].get("version")) != "2.1"])
    wanted = {"Vault via OIDC": ("vault", "oidc"), "AWS via OIDC": ("aws", "oidc"), "an age file": ("age",)}
    r.check("the examples cover Vault via OIDC, AWS via OIDC and an age file",
            [f"no example for {label}" for label, words in wanted.items()
             if not any(all(w in n for w in words) for n, _ in examples)])

    problems = []
    for kind, name, path, data in comps:
        if kind != "examples" and not SNAKE.match(name):
            problems.append(f"{path}: component name is not snake_case")
        for pname in ((data or {}).get("parameters") or {}):
            if not SNAKE.match(pname):
                problems.append(f"{path}: parameter {pname} is not snake_case")
    for n, _ in examples:
        if not SNAKE.match(n):
            problems.append(f"examples/{n}.yml: name is not snake_case")
    r.check("RC010 component names and parameter keys are snake_case", problems)

    problems = []
    for kind, name, path, data in comps:
        if kind not in ("commands", "jobs"):
            continue
        for run in run_steps(data):
            if not isinstance(run, dict):
                problems.append(f"{path}: a run step is a bare string")
            elif not str(run.get("name") or "").strip():
                problems.append(f"{path}: a run step has no name")
    r.check("RC008 every run step is a map with a name", problems)

    problems = []
    for kind, name, path, data in comps:
        if kind not in ("commands", "jobs"):
            continue
        for run in run_steps(data):
            command = run.get("command", "") if isinstance(run, dict) else run
            if len(command) > MAX_INLINE and not INCLUDE.search(command):
                problems.append(f"{path}: a {len(command)}-character run command is inline")
    r.check(f"RC009 run commands over {MAX_INLINE} characters come from <<include()>>", problems)

    problems = []
    for kind, name, path, data in comps:
        if kind == "examples":
            continue
        declared = set(((data or {}).get("parameters") or {}).keys())
        for s in walk_strings(data):
            for used in PARAM_REF.findall(s):
                if used not in declared:
                    problems.append(f"{path}: << parameters.{used} >> is not declared")
    r.check("every << parameters.x >> used in a component is declared in it", problems)

    problems = []
    for kind, name, path, data in comps:
        for pname, p in ((data or {}).get("parameters") or {}).items():
            p = p or {}
            ptype = p.get("type")
            if ptype not in PARAM_TYPES:
                problems.append(f"{path}: parameter {pname} has the type {ptype!r}")
                continue
            if ptype == "enum":
                enum = p.get("enum")
                if not isinstance(enum, list) or not enum:
                    problems.append(f"{path}: enum parameter {pname} has no enum list")
                elif "default" in p and p["default"] not in enum:
                    problems.append(f"{path}: default {p['default']!r} of {pname} is not in its enum")
            if "default" in p and not type_ok(ptype, p["default"]):
                problems.append(f"{path}: default {p['default']!r} of {pname} is not a {ptype}")
    r.check("parameter types are valid, defaults match their type and enum defaults are in their enum",
            problems)

    # Calls of the orb's own commands and executors, inside the orb and in the examples.
    commands = {n: (d or {}).get("parameters") or {} for k, n, p, d in comps if k == "commands"}
    jobs = {n: (d or {}).get("parameters") or {} for k, n, p, d in comps if k == "jobs"}
    executors = {n: (d or {}).get("parameters") or {} for k, n, p, d in comps if k == "executors"}
    problems = []
    for kind, name, path, data in comps:
        if kind not in ("commands", "jobs"):
            continue
        for step in steps_of(data):
            if isinstance(step, dict) and len(step) == 1:
                (cmd, args), = step.items()
                if cmd in BUILTIN_STEPS:
                    continue  # inside an orb, `run` is always the built-in step
                if cmd in commands:
                    problems += call_problems(path, args if isinstance(args, dict) else {},
                                              commands[cmd], f"command {cmd}")
        if kind == "jobs":
            params = (data or {}).get("parameters") or {}
            ex = data.get("executor")
            if isinstance(ex, str) and PARAM_REF.fullmatch(ex.strip()):
                p = params.get(PARAM_REF.fullmatch(ex.strip()).group(1)) or {}
                if p.get("type") != "executor" or p.get("default") not in executors:
                    problems.append(f"{path}: executor parameter's default is not one of the orb's executors")
            elif isinstance(ex, str) and ex not in executors:
                problems.append(f"{path}: unknown executor {ex}")
    r.check("the orb's jobs call its commands with declared parameters and every required one", problems)

    problems = []
    for n, d in examples:
        usage = (d or {}).get("usage") or {}
        orbs = usage.get("orbs") or {}
        alias = next((a for a, ref in orbs.items() if str(ref).startswith("stepsecret/stepsecret@")), None)
        if alias is None:
            problems.append(f"examples/{n}.yml: does not import stepsecret/stepsecret@<version>")
            continue
        used = 0
        for job_name, job in (usage.get("jobs") or {}).items():
            for step in (job or {}).get("steps") or []:
                if isinstance(step, dict) and len(step) == 1:
                    (cmd, args), = step.items()
                    if cmd.startswith(alias + "/"):
                        used += 1
                        c = cmd.split("/", 1)[1]
                        if c not in commands:
                            problems.append(f"examples/{n}.yml: no command {c}")
                        else:
                            problems += call_problems(f"examples/{n}.yml", args, commands[c], f"command {c}")
        for wf in (usage.get("workflows") or {}).values():
            for job in (wf or {}).get("jobs") or []:
                (jname, args), = job.items() if isinstance(job, dict) else ((job, {}),)
                if jname.startswith(alias + "/"):
                    used += 1
                    j = jname.split("/", 1)[1]
                    if j not in jobs:
                        problems.append(f"examples/{n}.yml: no job {j}")
                    else:
                        problems += call_problems(f"examples/{n}.yml", args, jobs[j], f"job {j}")
        if not used:
            problems.append(f"examples/{n}.yml: uses none of the orb's commands or jobs")
    r.check("examples call existing commands and jobs with declared parameters and every required one",
            problems)

    problems = []
    for kind, name, path, data in comps:
        if kind not in ("commands", "jobs"):
            continue
        for run in run_steps(data):
            if not isinstance(run, dict):
                continue
            m = INCLUDE.search(str(run.get("command", "")))
            if not m:
                continue
            script_path = os.path.join(src, m.group(1).strip())
            if not os.path.isfile(script_path):
                continue
            with open(script_path, encoding="utf-8") as f:
                script = f.read()
            used = set(re.findall(r"\bPARAM_[A-Z0-9_]+", script))
            env = set((run.get("environment") or {}).keys())
            for v in sorted(used - env):
                problems.append(f"{path}: {m.group(1)} reads {v}, which the step does not set")
            for v in sorted(env - used):
                problems.append(f"{path}: the step sets {v}, which {m.group(1)} never reads")
    r.check("each included script reads exactly the PARAM_* variables its run step sets", problems)

    problems = []
    comment = re.compile(r"(^|\s)#.*$")
    for kind, section in (packed or {}).items():
        if kind not in ("commands", "jobs"):
            continue
        for name, data in (section or {}).items():
            for run in run_steps(data):
                command = run.get("command", "") if isinstance(run, dict) else run
                for i, line in enumerate(command.splitlines(), 1):
                    if "BASH_ENV" in comment.sub("", line):
                        problems.append(f"{kind}/{name}: line {i} of a run command uses BASH_ENV")
    r.check("no run step of the packed orb touches $BASH_ENV (comments aside)", problems)

    with open(cargo_toml, encoding="utf-8") as f:
        m = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M)
    cargo_version = m.group(1) if m else None
    problems = []
    for table, label in ((commands.get("install"), "commands/install.yml"), (jobs.get("run"), "jobs/run.yml")):
        default = ((table or {}).get("version") or {}).get("default")
        if default != cargo_version:
            problems.append(f"{label}: version defaults to {default!r}, Cargo.toml says {cargo_version!r}")
    r.check("install's version parameter defaults to Cargo.toml's version", problems)

    failed = sum(1 for _, p in r.results if p)
    return 1 if failed or packed is None else 0


# (what is broken, file, old text, new text or None to rename to `old`→`new` path, check that must fail)
MUTATIONS = [
    ("an undeclared << parameters.x >>", "commands/run.yml", "name: << parameters.step_name >>",
     "name: << parameters.stepname >>", "every << parameters.x >>"),
    ("an include of a missing file", "commands/install.yml", "<<include(scripts/install.sh)>>",
     "<<include(scripts/missing.sh)>>", "the orb packs"),
    ("a long inline run command", "commands/install.yml", "command: <<include(scripts/install.sh)>>",
     "command: echo this inline command is much longer than sixty-four characters, so it must be a file",
     "RC009"),
    ("a run step without a name", "commands/install.yml", "      name: Install stepsecret << parameters.version >>\n",
     "", "RC008"),
    ("an enum default outside its enum", "executors/default.yml", "parameters:\n",
     "parameters:\n  size:\n    description: The size.\n    type: enum\n    enum: [small, large]\n    default: huge\n",
     "enum defaults"),
    ("no display.source_url", "@orb.yml", "  source_url:", "  sources_url:", "RC001"),
    ("no display.home_url", "@orb.yml", "  home_url:", "  homepage_url:", "RC012"),
    ("a component without a description", "executors/default.yml", "description: >", "summary: >", "RC002"),
    ("an example named example", "examples/age_file.yml", None, "examples/age_file_example.yml", "RC004"),
    ("a camelCase parameter", "jobs/run.yml", "  checkout:\n", "  doCheckout:\n", "RC010"),
    ("a description starting with 'This command'", "commands/install.yml", "  Download the static",
     "  This command downloads the static", "descriptions are plain sentences"),
    ("a write to $BASH_ENV", "scripts/run.sh", "\nexec \"$bin\"",
     "\necho 'export LEAK=1' >> \"$BASH_ENV\"\nexec \"$bin\"", "BASH_ENV"),
    ("a script reading a PARAM_ its step does not set", "scripts/run.sh", "${PARAM_SPEC:-}",
     "${PARAM_SPECS:-}", "PARAM_* variables"),
    ("an example passing an unknown parameter", "examples/vault_oidc.yml", "vault_role: ci-deploy",
     "vault_rol: ci-deploy", "examples call existing"),
    ("an example missing a required parameter", "examples/aws_oidc.yml", "            command: make integration-test\n",
     "", "examples call existing"),
    ("an install version that is not Cargo.toml's", "commands/install.yml", 'default: "0.1.0"',
     'default: "0.0.9"', "Cargo.toml's version"),
    ("a short orb description", "@orb.yml", "description: >\n", "description: Fetch secrets.\nold_description: >\n",
     "RC005"),
]


def selftest(src, cargo_toml):
    import contextlib
    import io
    import shutil
    import tempfile

    failed = 0
    for what, rel, old, new, rule in MUTATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "src")
            shutil.copytree(src, copy)
            path = os.path.join(copy, rel)
            if old is None:
                os.rename(path, os.path.join(copy, new))
            else:
                text = open(path, encoding="utf-8").read()
                if old not in text:
                    print(f"FAIL review catches {what}: the mutation no longer applies to {rel}")
                    failed += 1
                    continue
                open(path, "w", encoding="utf-8").write(text.replace(old, new, 1))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = review(copy, cargo_toml)
            hits = [l for l in out.getvalue().splitlines() if l.startswith("FAIL") and rule in l]
            if rc != 0 and hits:
                print(f"PASS review catches {what} ({rule})")
            else:
                failed += 1
                print(f"FAIL review catches {what}: no failing '{rule}' check (exit {rc})")
    return 1 if failed else 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "pin":
        # pin SCRIPT OUT VERSION ARCH=SHA256...: a copy of install.sh with a release's digests
        with open(argv[2], encoding="utf-8") as f:
            text = f.read()
        try:
            pins = parse_pins(argv[4:])
        except PackError as e:
            print(f"pin: {e}", file=sys.stderr)
            return 1
        with open(argv[3], "w", encoding="utf-8") as f:
            f.write(pin(text, pins))
        os.chmod(argv[3], 0o755)
        return 0
    if len(argv) >= 4 and argv[1] == "pack":
        try:
            dump(pack(argv[2], parse_pins(argv[4:])), argv[3])
        except PackError as e:
            print(f"pack: {e}", file=sys.stderr)
            return 1
        return 0
    if len(argv) == 4 and argv[1] == "usages":
        os.makedirs(argv[3], exist_ok=True)
        for kind, name, path, data in components(argv[2]):
            if kind == "examples":
                dump((data or {}).get("usage") or {}, os.path.join(argv[3], f"{name}.yml"))
                print(os.path.join(argv[3], f"{name}.yml"))
        return 0
    if len(argv) == 4 and argv[1] == "review":
        return review(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "selftest":
        return selftest(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
