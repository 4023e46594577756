"""Build (once, cached by version) the upstream binaries the local cluster runs, from Go modules.

No binary downloads are possible on our machines, but the Go module proxy is reachable, so every
component is compiled from its published module with the machine's Go toolchain:

- Kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler): `k8s.io/kubernetes`
  replaces its staging modules with `./staging/...`, which `go install` refuses, so a wrapper
  module of ours (`hack/kubernetes/go.mod`) requires it and replaces each staging module with its
  published `v0.X.Y`. The three binaries share most packages and are built in one `go build`.
- etcd: `go.etcd.io/etcd/server/v3` has relative replaces as well; wrapper `hack/etcd/go.mod`.
- KWOK: no replaces, so a plain `go install sigs.k8s.io/kwok/cmd/kwok@VERSION`.
- Helm (not part of a cluster: the tests lint and render the chart with it): no replaces either,
  `go install helm.sh/helm/v4/cmd/helm@VERSION`, with the version flags of Helm's own Makefile.
- LeaderWorkerSet: wrapper `hack/lws/go.mod` (a plain `go install ...@VERSION` asks the proxy
  for the module's version list, which it refuses for this module); its main package is called
  `cmd`, the binary `lws-controller`.

Binaries land in `<cache root>/<component>-<version>/`; a second run finds them and builds
nothing. A cold build prints a progress line every 30 s (what, how long so far, packages done),
since `go build` alone is silent for many minutes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fusioninfer_dev.localcluster.progress import Echo, run_with_progress

# The wrapper modules live in the repository's `hack/` directory (the local cluster is development
# tooling, used from a checkout).
HACK_DIR = Path(__file__).resolve().parents[4] / "hack"
PROGRESS_INTERVAL = 30.0


class BuildError(RuntimeError):
    """The binaries are missing and could not be built."""


def _version_ldflags(version: str) -> tuple[str, ...]:
    """`-X` flags that make `/version` (and feature-gate defaults, which key on it) report the
    real release instead of `v0.0.0-master+$Format:%H$`."""
    major, minor = version.lstrip("v").split(".")[:2]
    flags: list[str] = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return tuple(flags)


@dataclass(frozen=True)
class GoComponent:
    """One upstream component built from the Go module proxy.

    `wrapper` names a directory under `hack/` holding a go.mod that requires the upstream module
    (built with `go build` inside it); without one the packages are built with `go install
    PACKAGE@VERSION`.
    """

    name: str
    version: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    wrapper: str | None = None
    ldflags: tuple[str, ...] = ()

    @property
    def cache_key(self) -> str:
        return f"{self.name}-{self.version}"


KUBERNETES_VERSION = "v1.33.13"
ETCD_VERSION = "v3.5.21"
KWOK_VERSION = "v0.7.0"
LWS_VERSION = "v0.7.0"

KUBERNETES = GoComponent(
    name="kubernetes",
    version=KUBERNETES_VERSION,
    packages=tuple(
        f"k8s.io/kubernetes/cmd/{b}" for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ),
    binaries=("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    wrapper="kubernetes",
    ldflags=_version_ldflags(KUBERNETES_VERSION),
)
ETCD = GoComponent(
    name="etcd",
    version=ETCD_VERSION,
    packages=("go.etcd.io/etcd/server/v3",),
    binaries=("etcd",),
    wrapper="etcd",
)
KWOK = GoComponent(
    name="kwok",
    version=KWOK_VERSION,
    packages=("sigs.k8s.io/kwok/cmd/kwok",),
    binaries=("kwok",),
)
LWS = GoComponent(
    name="lws",
    version=LWS_VERSION,
    packages=("sigs.k8s.io/lws/cmd",),
    binaries=("lws-controller",),
    wrapper="lws",
)
GIE_EPP_VERSION = "v1.2.1"
GIE_EPP = GoComponent(
    name="gie-epp",
    version=GIE_EPP_VERSION,
    # The endpoint picker, and the body-based router that puts a request's model in a header.
    packages=(
        "sigs.k8s.io/gateway-api-inference-extension/cmd/epp",
        "sigs.k8s.io/gateway-api-inference-extension/cmd/bbr",
    ),
    binaries=("epp", "bbr"),
    wrapper="gie-epp",
)
LLMD_VERSION = "v0.7.1"
LLMD_PD_SIDECAR = GoComponent(
    name="llmd-pd-sidecar",
    version=LLMD_VERSION,
    packages=("github.com/llm-d/llm-d-inference-scheduler/cmd/pd-sidecar",),
    binaries=("pd-sidecar",),
    wrapper="llmd-pd-sidecar",
)
CUSTOM_METRICS_VERSION = "v1.33.0"
CUSTOM_METRICS = GoComponent(
    name="custom-metrics",
    version=CUSTOM_METRICS_VERSION,
    # sigs.k8s.io/custom-metrics-apiserver's sample provider behind the custom and external
    # metrics APIs, so the controller manager's HPA controller has a metrics API to read.
    packages=("fusioninfer.dev/hack/custom-metrics",),
    binaries=("custom-metrics-adapter",),
    wrapper="custom-metrics",
)
HELM_VERSION = "v4.3.1"
HELM = GoComponent(
    name="helm",
    version=HELM_VERSION,
    packages=("helm.sh/helm/v4/cmd/helm",),
    binaries=("helm",),
    # As Helm's Makefile sets them: otherwise `helm version` reports the bare "v4.3".
    ldflags=(
        f"-X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
        "-X helm.sh/helm/v4/internal/version.gitTreeState=clean",
    ),
)
# What a local cluster needs, in build order (the biggest first: its progress matters most).
CLUSTER_COMPONENTS: tuple[GoComponent, ...] = (KUBERNETES, ETCD, KWOK, LWS, CUSTOM_METRICS)
# The routing components the tests start on what the operator renders: the GIE picker and the
# llm-d P/D sidecar. The llm-d router's picker (same module as the sidecar) is not among them:
# its dependency github.com/llm-d/llm-d-kv-cache is not served by the Go module proxy here.
PICKER_COMPONENTS: tuple[GoComponent, ...] = (GIE_EPP, LLMD_PD_SIDECAR)
# Tools the tests run on what ships rather than in a cluster: Helm (`helm lint`, `helm template`).
TOOL_COMPONENTS: tuple[GoComponent, ...] = (HELM,)


def cache_root() -> Path:
    """The cache root: `$FUSIONINFER_CACHE_DIR` or `~/.cache/fusioninfer`."""
    env = os.environ.get("FUSIONINFER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fusioninfer"


def component_dir(component: GoComponent, root: Path | None = None) -> Path:
    """Where `component`'s binaries are cached: `<cache root>/<name>-<version>`."""
    return (root if root is not None else cache_root()) / component.cache_key


def missing_binaries(component: GoComponent, directory: Path) -> list[str]:
    """Names of `component`'s binaries not (executable) in `directory`."""
    return [b for b in component.binaries if not os.access(directory / b, os.X_OK)]


def go_build_argv(component: GoComponent, out_dir: Path) -> list[str]:
    """The `go` command that builds `component` into `out_dir` (pure; unit-tested).

    `-trimpath` keeps the build reproducible and free of local paths; `-v` prints each package as
    it is compiled, which is what the progress lines count.
    """
    ldflags = " ".join(("-s", "-w", *component.ldflags))
    if component.wrapper is not None:
        # One package: name the binary (etcd's main package would otherwise be called `server`).
        out = f"{out_dir}/{component.binaries[0]}" if len(component.packages) == 1 else f"{out_dir}/"
        return ["go", "build", "-v", "-trimpath", f"-ldflags={ldflags}", "-o", out, *component.packages]
    return [
        "go",
        "install",
        "-v",
        "-trimpath",
        f"-ldflags={ldflags}",
        *(f"{p}@{component.version}" for p in component.packages),
    ]


def go_build_env(component: GoComponent, out_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the build: no cgo (static binaries, no C toolchain needed), the machine's
    own toolchain unless a module asks for a newer one, and GOBIN for `go install`."""
    env = dict(os.environ if base is None else base)
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOFLAGS", "-buildvcs=false")
    if component.wrapper is None:
        env["GOBIN"] = str(out_dir)
    return env


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """Serialise builds: two test sessions starting on a cold machine must not build twice at once."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = directory.parent / f".{directory.name}.build.lock"
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _go_build_detail(packages: int, _last: str) -> str:
    return f", {packages} packages"


def ensure_component(component: GoComponent, root: Path | None = None, *, echo: Echo | None = None) -> Path:
    """Return the directory with `component`'s binaries, building them first when missing."""
    target = component_dir(component, root)
    if not missing_binaries(component, target):
        return target
    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    with _build_lock(target):
        if not missing_binaries(component, target):  # built by another process while we waited
            return target
        staging = target.with_name(target.name + ".partial")
        staging.mkdir(parents=True, exist_ok=True)
        cwd = HACK_DIR / component.wrapper if component.wrapper else None
        if cwd is not None and not (cwd / "go.mod").is_file():
            raise BuildError(f"wrapper module {cwd}/go.mod is missing")
        what = f"building {component.name} {component.version} ({', '.join(component.binaries)})"
        say(f"[fusioninfer] {what} from the Go module proxy; cached in {target} afterwards")
        try:
            run_with_progress(
                go_build_argv(component, staging),
                cwd=cwd,
                env=go_build_env(component, staging),
                what=what,
                say=say,
                interval=PROGRESS_INTERVAL,
                counts=lambda line: not line.startswith("go: downloading"),
                detail=_go_build_detail,
                error=BuildError,
            )
        except FileNotFoundError as exc:
            raise BuildError(f"cannot run the Go toolchain ({exc}); install Go 1.24 or newer") from exc
        still = missing_binaries(component, staging)
        if still:
            raise BuildError(f"{what} finished but {still} are missing in {staging}")
        target.mkdir(parents=True, exist_ok=True)
        for binary in component.binaries:
            (staging / binary).replace(target / binary)
        with contextlib.suppress(OSError):
            staging.rmdir()
    return target


def ensure_cluster_binaries(root: Path | None = None, *, echo: Echo | None = None) -> dict[str, Path]:
    """Every binary a local cluster runs, by name (building what is missing)."""
    paths: dict[str, Path] = {}
    for component in CLUSTER_COMPONENTS:
        directory = ensure_component(component, root, echo=echo)
        for binary in component.binaries:
            paths[binary] = directory / binary
    return paths
