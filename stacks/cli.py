"""`python -m stacks`: validate stack configs, print the kubespray inventory, render manifests,
list what an air-gapped install must mirror, promote settings between stacks, roll a stack back to an earlier update, recover a stack
after a crashed run, check a stack for drift, print the JSON Schema of stack files.

`validate`, `inventory`, `render`, `promote` and `new` run without the Pulumi CLI, without a
cluster and without network (`rollback`, `recover` and `drift` drive the pulumi CLI). Exit codes:
0 success, 1 a problem with the config, 2 a usage error. Problems go to stderr,
one line each: `<key.path>: <what is wrong and what would be right>`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from components import kubespray_inventory as inv
from stacks import drift, newstack, recover, rollback_runner, schema
from stacks import promotion as pr
from stacks.config import ConfigError, PlatformSpec
from stacks.files import PROJECT_ROOT, load_spec_file, stack_file
from stacks.plumbing import SubprocessRunner, UsageError, validate_text, write_atomic


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _sources(args: argparse.Namespace) -> list[tuple[str, Path]]:
    if args.config_file:
        return [(str(args.config_file), Path(args.config_file))]
    stacks = args.stack if isinstance(args.stack, list) else [args.stack]
    return [(name, stack_file(name, args.root)) for name in stacks if name]


def _report(label: str, exc: ConfigError) -> None:
    print(f"{label}: {len(exc.problems)} problem(s)", file=sys.stderr)
    for problem in exc.problems:
        print(str(problem), file=sys.stderr)


def _warn(label: str, spec: PlatformSpec) -> None:
    for line in spec.warnings:
        print(f"{label}: warning: {line}", file=sys.stderr)


def _load_one(args: argparse.Namespace) -> PlatformSpec | None:
    ((label, path),) = _sources(args)
    try:
        spec = load_spec_file(path, args.root)
    except ConfigError as exc:
        _report(label, exc)
        return None
    _warn(label, spec)
    return spec


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for label, path in _sources(args):
        try:
            spec = load_spec_file(path, args.root)
        except ConfigError as exc:
            _report(label, exc)
            failed += 1
            continue
        print(
            f"{label}: ok ({spec.environment}, {spec.cluster.mode} mode, {len(spec.cluster.nodes)} node(s), "
            f"{len(spec.helm.releases)} release(s), {len(spec.apps)} app(s))"
        )
        _warn(label, spec)
    return 1 if failed else 0


def cmd_inventory(args: argparse.Namespace) -> int:
    spec = _load_one(args)
    if spec is None:
        return 1
    if spec.cluster.mode != "kubespray":
        print("cluster.mode: is 'existing'; there is no kubespray inventory for this stack", file=sys.stderr)
        return 1
    rendered = inv.render(spec.cluster, spec.schedulable_control_plane)
    if args.out:
        out = Path(args.out)
        (out / inv.GROUP_VARS_PATH).parent.mkdir(parents=True, exist_ok=True)
        (out / "hosts.yaml").write_text(rendered.hosts_yaml, encoding="utf-8")
        (out / inv.GROUP_VARS_PATH).write_text(rendered.group_vars_yaml, encoding="utf-8")
        print(f"wrote {out / 'hosts.yaml'} and {out / inv.GROUP_VARS_PATH}")
        return 0
    sys.stdout.write(f"# hosts.yaml\n{rendered.hosts_yaml}---\n# {inv.GROUP_VARS_PATH}\n{rendered.group_vars_yaml}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    if args.allow_unreachable and not args.charts:
        raise UsageError("render: --allow-unreachable applies to --charts only")
    spec = _load_one(args)
    if spec is None:
        return 1
    from stacks.render import render_stack  # here, not at the top: it loads pulumi_kubernetes (slow)

    try:
        written = render_stack(spec, args.root, Path(args.out))
    except ConfigError as exc:
        _report(_sources(args)[0][0], exc)
        return 1
    print(f"wrote {len(written)} manifest(s) to {args.out}")
    return _render_charts(args, spec) if args.charts else 0


def _render_charts(args: argparse.Namespace, spec: PlatformSpec) -> int:
    """`render --charts`: every release by `helm template`; 1 when one did not render, except
    that `--allow-unreachable` turns a repository that could not be contacted into a warning."""
    from stacks.charts import template_releases
    from stacks.render import helm_releases  # loads pulumi_kubernetes: only when rendering

    label = _sources(args)[0][0]
    charts_dir = Path(args.out) / "charts"
    # OUT is a render output (render_stack checked): no chart file of an earlier run may pass for this one's
    for old in charts_dir.glob("*.helm.yaml"):
        old.unlink()
    results = template_releases(helm_releases(spec, args.root), charts_dir)
    failures, warnings = [], []
    for r in results:
        what = f"chart {r.release.namespace}/{r.release.name} ({r.release.chart} {r.release.version})"
        if r.path is not None:
            print(f"{what}: rendered to {r.path}")
        elif r.unreachable and args.allow_unreachable:
            warnings.append(f"{label}: warning: {what}: not rendered, the repository is unreachable "
                            f"(accepted by --allow-unreachable): {r.problem}")  # fmt: skip
        elif r.unreachable:
            failures.append(f"{what}: not rendered, the repository is unreachable: {r.problem}; reach it (or set "
                            "a mirror in helm.repoMirrors), or pass --allow-unreachable to accept it offline")  # fmt: skip
        else:
            failures.append(f"{what}: not rendered: {r.problem}")
    for line in warnings:
        print(line, file=sys.stderr)
    if failures:
        print(f"{label}: {len(failures)} of {len(results)} chart(s) not rendered", file=sys.stderr)
        for line in failures:
            print(line, file=sys.stderr)
        return 1
    return 0


def cmd_mirror_list(args: argparse.Namespace) -> int:
    """Every file, image and chart the stack needs, upstream beside where it is fetched from;
    1 when something could not be listed (unless --allow-incomplete)."""
    spec = _load_one(args)
    if spec is None:
        return 1
    from stacks.mirror_list import mirror_list  # loads pulumi_kubernetes (slow): only here

    label = _sources(args)[0][0]
    try:
        listed = mirror_list(spec, args.root, kubespray_dir=args.kubespray, ansible_playbook=args.ansible_playbook,
                             arch=args.arch)  # fmt: skip
    except ConfigError as exc:
        _report(label, exc)
        return 1
    except (RuntimeError, ValueError) as exc:
        print(f"{label}: {exc}", file=sys.stderr)
        return 1
    for out in args.out or []:
        # each file in the format its name says: .json, or the text list
        write_atomic(Path(out), listed.as_json() + "\n" if out.endswith(".json") else listed.as_text())
        print(f"wrote {len(listed.items)} item(s) to {out}")
    if not args.out:
        sys.stdout.write(listed.as_json() + "\n" if args.json else listed.as_text())
    for line in listed.incomplete:
        print(f"{label}: {'warning: ' if args.allow_incomplete else ''}incomplete: {line}", file=sys.stderr)
    return 1 if listed.incomplete and not args.allow_incomplete else 0


def cmd_promote(args: argparse.Namespace) -> int:

    src_path, dst_path = stack_file(args.src, args.root), stack_file(args.dst, args.root)
    if args.src == args.dst:
        raise UsageError(f"promote: SRC and DST are both {args.src!r}")
    texts = []
    for path in (src_path, dst_path):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except OSError as exc:
            print(f"{path}: cannot read ({exc.strerror})", file=sys.stderr)
            return 1
    only = [s for part in args.only or [] for s in part.split(",") if s.strip()]
    try:
        plan = pr.plan_promotion(texts[0], texts[1], src=args.src, dst=args.dst, only=only)
    except pr.PromotionError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return 1
    if plan.problems:
        print(
            f"promote {args.src} → {args.dst}: {len(plan.problems)} problem(s); {dst_path.name} unchanged",
            file=sys.stderr,
        )
        for problem in plan.problems:
            print(str(problem), file=sys.stderr)
        return 1
    for item in plan.only_in_src:
        print(
            f"note: {item} exists only in {args.src}; not created in {args.dst} (add it with {args.dst}'s own settings)"
        )
    if not plan.changes:
        print(
            f"promote {args.src} → {args.dst}: nothing to change; {dst_path.name} already has {args.src}'s promotable settings"
        )
        return 0
    print(f"promote {args.src} → {args.dst} ({dst_path.name}):")
    for line in pr.diff_lines(plan):
        print(line)
    after = validate_text(plan.new_text, dst_path.name, args.root)
    if after:
        before = {str(p) for p in validate_text(texts[1], dst_path.name, args.root)}
        print(
            f"promote {args.src} → {args.dst}: refused, {dst_path.name} would not validate as "
            f"{args.dst} ({len(after)} problem(s)); {dst_path.name} unchanged",
            file=sys.stderr,
        )
        for problem in after:
            note = f" (already in {dst_path.name} before the promotion)" if str(problem) in before else ""
            print(f"{problem}{note}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"dry run: {dst_path.name} not written")
        return 0
    write_atomic(dst_path, plan.new_text)
    print(f"wrote {dst_path.name} ({len(plan.changes)} setting(s)); review with git diff {dst_path.name}")
    return 0


def cmd_new(args: argparse.Namespace) -> int:

    dst, src = stack_file(args.name, args.root), stack_file(args.source, args.root)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name):
        print(f"new: {args.name!r} is not a stack name (letters, digits, '-', '_', '.')", file=sys.stderr)
        return 2
    if dst.exists():
        print(f"new: {dst.name} exists already; pick another name or edit it", file=sys.stderr)
        return 1
    try:
        made = newstack.new_stack(src.read_text(encoding="utf-8"), args.name, args.environment)
    except FileNotFoundError:
        print(f"new: {src.name}: no such stack file", file=sys.stderr)
        return 1
    except newstack.NewStackError as exc:
        print(f"new: {exc}", file=sys.stderr)
        return 1
    dst.write_text(made.text, encoding="utf-8")
    print(f"wrote {dst.name} from {src.name}: the same shape, without {args.source}'s machines and secrets")
    if made.emptied:
        print("fill in (validate lists what is still missing):")
        for path in made.emptied:
            print(f"  {path}")
    print("then create the stack and set its secrets, under your own passphrase:")
    print(f"  pulumi stack init {args.name}")
    for line in newstack.secret_commands(args.name, made.secrets):
        print(f"  {line}")
    print(f"  make plan STACK={args.name}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:

    only = [part for sel in args.only or [] for part in sel.split(",") if part.strip()]
    return rollback_runner.run_rollback(
        args.stack,
        to=args.to,
        yes=args.yes,
        root=args.root,
        runner=SubprocessRunner(args.root),
        list_only=args.list,
        only=only,
    )


def cmd_recover(args: argparse.Namespace) -> int:

    return recover.run_recover(
        args.stack, yes=args.yes, root=args.root, runner=SubprocessRunner(args.root), kubeconfig=args.kubeconfig
    )


def cmd_drift(args: argparse.Namespace) -> int:

    return drift.check(args.stack, runner=SubprocessRunner(args.root))


def cmd_schema(args: argparse.Namespace) -> int:
    generated = {
        args.root / "stacks" / "stack.schema.json": schema.render(),
        args.root / "docs" / "config-reference.md": schema.reference(),
    }
    if args.check:
        stale = [t for t, text in generated.items() if not (t.is_file() and t.read_text() == text)]
        for target in stale:
            print(f"{target.relative_to(args.root)} is stale: run python -m stacks schema --write", file=sys.stderr)
        return 1 if stale else 0
    if args.write:
        for target, text in generated.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, text)
            print(f"wrote {target.relative_to(args.root)}")
        return 0
    sys.stdout.write(generated[args.root / "stacks" / "stack.schema.json"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m stacks", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="project root (where Pulumi.yaml is)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def stack_args(p: argparse.ArgumentParser, many: bool = False) -> None:
        p.add_argument("stack", nargs="*" if many else "?", help="stack name: reads Pulumi.<STACK>.yaml")
        p.add_argument("--config-file", type=Path, help="any file in the Pulumi.<stack>.yaml format")

    p = sub.add_parser("validate", help="parse + validate; prints every problem")
    stack_args(p, many=True)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("inventory", help="print the kubespray inventory and group_vars the cluster component uploads")
    stack_args(p)
    p.add_argument("--out", help="write hosts.yaml and group_vars/ into this directory instead of printing")
    p.set_defaults(func=cmd_inventory)

    p = sub.add_parser("render", help="write every Kubernetes object the stack declares as YAML (secrets redacted)")
    stack_args(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--charts", action="store_true",
                   help="also render every Helm release with `helm template` into OUT/charts (needs the chart repos); "
                        "exit 1 when one does not render")  # fmt: skip
    p.add_argument("--allow-unreachable", action="store_true",
                   help="with --charts: a chart repository that cannot be contacted (no network) is a warning, "
                        "not a failure; a chart that was fetched and does not render still fails")  # fmt: skip
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("mirror-list", help="every file, image and chart the stack needs, and where its mirrors fetch them from")
    stack_args(p)
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p.add_argument("--out", action="append",
                   help="write the list into this file instead of printing it (FILE.json: as JSON); may be repeated")  # fmt: skip
    p.add_argument("--kubespray", type=Path, help="a checkout of the pinned kubespray release: lists its downloads for this stack")
    p.add_argument("--ansible-playbook", help="the ansible-playbook of that release's requirements (default: on PATH)")
    p.add_argument("--arch", choices=("amd64", "arm64"), default="amd64", help="the nodes' architecture")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="exit 0 when something could not be listed (no kubespray tree, a chart out of reach), with a warning")  # fmt: skip
    p.set_defaults(func=cmd_mirror_list)

    p = sub.add_parser(
        "promote",
        help="copy promotable settings (images, chart versions, values) from one stack file to another",
        description="Copy the promotable settings (stacks/promotion.py PROMOTABLE) of SRC into DST's stack file, "
        "keeping DST's comments, layout and secrets; refused when DST would not validate.",
    )
    p.add_argument("src", help="stack to promote from (reads Pulumi.<SRC>.yaml)")
    p.add_argument("dst", help="stack to promote to (writes Pulumi.<DST>.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    p.add_argument(
        "--only",
        action="append",
        metavar="SEL[,SEL…]",
        help="promote only these settings, e.g. apps.my-nginx,helm.releases.grafana.version (repeatable)",
    )
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser(
        "new",
        help="write Pulumi.NAME.yaml shaped like another stack, without its machines and secrets",
    )
    p.add_argument("name", help="the new stack's name")
    p.add_argument("--from", dest="source", required=True, help="the stack to copy the shape of")
    p.add_argument("--environment", choices=("dev", "staging", "prod"),
                   help="tier of the new stack (default: NAME when it is one, else the source's)")  # fmt: skip
    p.set_defaults(func=cmd_new)

    p = sub.add_parser(
        "rollback",
        help="restore the config of an earlier successful update and re-apply it (needs the pulumi CLI)",
        description="Restore a previous successful update's config (from `pulumi stack history`) into "
        "Pulumi.<STACK>.yaml, preview, apply and check nothing is left to change. Secrets keep their current values.",
    )
    p.add_argument("stack", help="stack name: rewrites Pulumi.<STACK>.yaml")
    p.add_argument(
        "--to",
        type=int,
        metavar="N",
        help="version from the stack's history (default: the last successful update before the latest)",
    )
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.add_argument("--list", action="store_true", help="print the stack's history with the numbers --to takes")
    p.add_argument(
        "--only",
        action="append",
        metavar="SEL[,SEL…]",
        help="restore only these settings (the paths promote takes), e.g. apps.my-nginx (repeatable)",
    )
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser(
        "recover",
        help="after a crashed pulumi run: clear the stack's lock and what the run left in flight (needs pulumi, helm)",
        description="Clear the lock a crashed run left, settle its interrupted Helm releases (uninstall what the "
        "run installed and never recorded, leave alone a release of that name that was there before the run, roll "
        "back an upgrade left pending) and drop its other interrupted creates from the state; then `pulumi up` "
        "converges. Everything is read first; the question lists what will be removed.",
    )
    p.add_argument("stack", help="stack name")
    p.add_argument(
        "--yes", action="store_true", help="do not ask (that nothing else runs on the stack, and the plan) first"
    )
    p.add_argument("--kubeconfig", help="the cluster's kubeconfig for helm (default: the stack's kubeconfig output)")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser(
        "drift",
        help="does the cluster still match the program and the stack file? (needs the pulumi CLI)",
        description="Run `pulumi preview --refresh --expect-no-changes`: exit 0 when nothing would change, 1 with "
        "the resources and property paths that drifted (never values) or when the preview failed.",
    )
    p.add_argument("stack", help="stack name")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of stack files (editors complete keys and flag mistakes with it)",
        description="The schema of Pulumi.<stack>.yaml, generated from the config models. The stack files name "
        "the committed copy, stacks/stack.schema.json, on their first line.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--write", action="store_true", help="write it to stacks/stack.schema.json, and docs/config-reference.md"
    )
    mode.add_argument(
        "--check", action="store_true", help="exit 1 when stacks/stack.schema.json or docs/config-reference.md is stale"
    )
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "config_file"):
        has_stack = bool(args.stack)
        if has_stack == bool(args.config_file):
            parser.error(f"{args.command}: give a STACK name or --config-file FILE (one of them)")
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.error(str(exc))
        return 2
