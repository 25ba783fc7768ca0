"""The model repository (Triton's layout) and its two TOML files.

::

    DIR/tenants.toml                 [tenants.NAME] cores, token_sha256, ddr_mib?,
                                     latency_target_ms?, max_queue?
    DIR/<model>/config.toml          tenant = "NAME"; optional [compile] options
    DIR/<model>/<version>/model.vfb  a compiled binary, or
    DIR/<model>/<version>/model.onnx compiled at load (:func:`compile_onnx`)

Everything read here is validated before the server changes anything: a bad file raises
:class:`RepositoryError` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vfpga.backend.binary import VfbFile, from_bytes, to_bytes
from vfpga.backend.retarget import allocate, prepare
from vfpga.errors import VfpgaError
from vfpga.hw.config import HardwareConfig

#: names of tenants and models: path- and URL-safe, no leading dot
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
#: the largest model file the repository reads (bytes)
MAX_MODEL_BYTES = 1 << 30
#: options of [compile] in a model's config.toml (those of `vfpga compile`)
COMPILE_OPTIONS = ("cores", "calib_random", "calib_dir", "seed", "input_shape")


class RepositoryError(VfpgaError):
    """A repository file or an operator's request is invalid (the message names the file
    or field, and the key)."""


class ModelNotFound(RepositoryError):
    """The repository has no such model (HTTP 404)."""


@dataclass(frozen=True)
class TenantSpec:
    """One tenant: its core count, the SHA-256 (hex) of its bearer token, an optional DDR
    quota (MiB; binaries whose DDR image is larger are refused), an optional latency
    target (ms; the elastic policy grows the tenant when its latency exceeds it) and its
    queue bound (requests waiting beyond it are answered 429)."""

    name: str
    cores: int
    token_sha256: str
    ddr_mib: float | None = None
    latency_target_ms: float | None = None
    max_queue: int = 16

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cores": self.cores,
            "token_sha256": self.token_sha256,
            "ddr_mib": self.ddr_mib,
            "latency_target_ms": self.latency_target_ms,
            "max_queue": self.max_queue,
        }


@dataclass
class ModelVersion:
    """One validated version of a model: its binary (bytes and parsed) and its SHA-256."""

    version: str
    blob: bytes
    vfb: VfbFile
    sha256: str
    source: str


@dataclass
class ModelSpec:
    """A model of the repository: its tenant and its validated versions."""

    name: str
    tenant: str
    versions: dict[str, ModelVersion] = field(default_factory=dict)

    @property
    def latest(self) -> str:
        return max(self.versions, key=_version_key)


def _version_key(v: str) -> tuple[int, int | str]:
    return (0, int(v)) if v.isdigit() else (1, v)


def check_name(what: str, name: object, where: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RepositoryError(
            f"{where}: {what} {name!r} is not a valid name (letters, digits, "
            "'_', '.', '-'; at most 64; not starting with '.' or '-')"
        )
    return name


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RepositoryError(f"{path}: no such file") from None
    except OSError as exc:
        raise RepositoryError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RepositoryError(f"{path}: not valid TOML: {exc}") from None


def tenant_spec(name: object, table: object, where: str, num_cores: int) -> TenantSpec:
    """Validate one tenant's table (from tenants.toml or an operator's request)."""
    name = check_name("tenant", name, where)
    where = f"{where}: tenant '{name}'"
    if not isinstance(table, dict):
        raise RepositoryError(f"{where}: expected a table of keys")
    known = {"cores", "token_sha256", "ddr_mib", "latency_target_ms", "max_queue", "name"}
    extra = sorted(set(table) - known)
    if extra:
        raise RepositoryError(
            f"{where}: unknown key(s) {', '.join(extra)} (known: "
            f"{', '.join(sorted(known - {'name'}))})"
        )
    cores = table.get("cores")
    if type(cores) is not int or not 1 <= cores <= num_cores:
        raise RepositoryError(f"{where}: 'cores' must be an integer 1..{num_cores}, got {cores!r}")
    token = table.get("token_sha256")
    if not isinstance(token, str) or not re.fullmatch(r"[0-9a-f]{64}", token):
        raise RepositoryError(
            f"{where}: 'token_sha256' must be the SHA-256 of the tenant's "
            "token as 64 lowercase hex digits (`vfpga serve --hash-token`)"
        )
    ddr = table.get("ddr_mib")
    if ddr is not None and (type(ddr) not in (int, float) or not 0 < ddr <= 1 << 20):
        raise RepositoryError(f"{where}: 'ddr_mib' must be a positive number, got {ddr!r}")
    lat = table.get("latency_target_ms")
    if lat is not None and (type(lat) not in (int, float) or not 0 < lat < 1e7):
        raise RepositoryError(
            f"{where}: 'latency_target_ms' must be a positive number, got {lat!r}"
        )
    mq = table.get("max_queue", 16)
    if type(mq) is not int or not 1 <= mq <= 4096:
        raise RepositoryError(f"{where}: 'max_queue' must be an integer 1..4096, got {mq!r}")
    return TenantSpec(name, cores, token, ddr, None if lat is None else float(lat), mq)


def read_tenants(repo: Path, num_cores: int, capacity: int | None = None) -> list[TenantSpec]:
    """The tenants of ``repo/tenants.toml`` (none if the file is absent); each fits one
    pool of ``num_cores`` cores, and together they fit ``capacity`` cores (default: one
    pool; a fleet holds more)."""
    path = repo / "tenants.toml"
    if not path.exists():
        return []
    doc = _read_toml(path)
    extra = sorted(set(doc) - {"tenants"})
    if extra:
        raise RepositoryError(
            f"{path}: unknown top-level key(s) {', '.join(extra)} (expected [tenants.NAME] tables)"
        )
    tables = doc.get("tenants", {})
    if not isinstance(tables, dict):
        raise RepositoryError(f"{path}: 'tenants' must be tables [tenants.NAME]")
    specs = [tenant_spec(n, t, str(path), num_cores) for n, t in tables.items()]
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.token_sha256 in seen:
            raise RepositoryError(
                f"{path}: tenants '{seen[spec.token_sha256]}' and "
                f"'{spec.name}' have the same token_sha256; give each "
                "tenant its own token"
            )
        seen[spec.token_sha256] = spec.name
    total = sum(s.cores for s in specs)
    cap = num_cores if capacity is None else capacity
    what = "the pool" if cap == num_cores else "the fleet"
    if total > cap:
        raise RepositoryError(f"{path}: the tenants ask for {total} cores, {what} has {cap}")
    return specs


def model_names(repo: Path) -> list[str]:
    """The folders of ``repo`` that hold a config.toml (the repository's models)."""
    if not repo.is_dir():
        return []
    return sorted(
        p.name
        for p in repo.iterdir()
        if p.is_dir() and NAME_RE.match(p.name) and (p / "config.toml").is_file()
    )


def compile_options(
    opts: dict[str, Any], cfg_path: Path, mdir: Path, hw: HardwareConfig
) -> dict[str, Any]:
    """The checked ``[compile]`` table of a model's config.toml: ``vfpga compile``'s
    options ``cores`` (1..pool), ``calib_random`` (N random inputs) or ``calib_dir`` (a
    folder of calibration images inside the model's folder), ``seed``, and
    ``input_shape`` (``{NAME = [dims]}`` for models with dynamic dimensions)."""
    out: dict[str, Any] = {}
    for k, v in opts.items():
        if k not in COMPILE_OPTIONS:
            raise RepositoryError(
                f"{cfg_path}: [compile] has unknown key '{k}' (known: {', '.join(COMPILE_OPTIONS)})"
            )
        if k in ("cores", "calib_random", "seed"):
            if type(v) is not int or v < 0 or (k != "seed" and v < 1):
                raise RepositoryError(f"{cfg_path}: [compile] {k} must be a positive integer")
            out[k] = v
        elif k == "calib_dir":
            where = (mdir / v).resolve() if isinstance(v, str) else None
            if where is None or not where.is_relative_to(mdir.resolve()) or not where.is_dir():
                raise RepositoryError(
                    f"{cfg_path}: [compile] calib_dir must name a folder inside {mdir}, got {v!r}"
                )
            out[k] = where
        else:
            if not isinstance(v, dict) or not all(
                isinstance(d, list) and d and all(type(x) is int and x > 0 for x in d)
                for d in v.values()
            ):
                raise RepositoryError(
                    f"{cfg_path}: [compile] input_shape must be a table "
                    "NAME = [positive dims], e.g. input = [1, 3, 224, 224]"
                )
            out[k] = {n: tuple(d) for n, d in v.items()}
    if not 1 <= out.get("cores", 1) <= hw.num_cores:
        raise RepositoryError(f"{cfg_path}: [compile] cores must be 1..{hw.num_cores}")
    if "calib_dir" in out and "calib_random" in out:
        raise RepositoryError(f"{cfg_path}: [compile] give calib_dir or calib_random, not both")
    return out


def _cache_key(onnx_bytes: bytes, opts: dict[str, Any]) -> str:
    """The compile cache's key: the model, the options and the calibration images."""
    h = hashlib.sha256(onnx_bytes)
    h.update(repr(sorted((k, str(v)) for k, v in opts.items() if k != "calib_dir")).encode())
    if "calib_dir" in opts:
        for f in sorted(p for p in opts["calib_dir"].rglob("*") if p.is_file()):
            h.update(f.name.encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def compile_onnx(path: Path, hw: HardwareConfig, options: dict[str, Any]) -> bytes:
    """Compile ``path`` as ``vfpga compile`` does with ``options`` (see
    :func:`compile_options`); the binary's bytes. The server's one call into the compiler
    (:func:`vfpga.driver.compile_model`, the pass pipeline)."""
    from vfpga.driver import compile_model

    _, res = compile_model(
        path,
        hw,
        options.get("cores", 1),
        calib="dir" if "calib_dir" in options else "random",
        num_random=options.get("calib_random", 16),
        calib_dir=options.get("calib_dir"),
        seed=options.get("seed", 0),
        input_shapes=options.get("input_shape"),
        keep_model=False,
    )
    return to_bytes(res.vfb)


def validate_binary(
    blob: bytes, source: str, hw: HardwareConfig, cores: int, ddr_mib: float | None
) -> VfbFile:
    """Parse and check a binary as :meth:`Tenant.deploy` will, without touching the pool:
    format and hardware fingerprint, a dispatch table, re-targetable to ``cores`` cores,
    and a DDR image within the tenant's quota."""
    vfb = from_bytes(blob, source, hw)
    if not len(vfb.dispatch):
        raise RepositoryError(
            f"{source}: the binary has no dispatch table (compile it with "
            "`vfpga compile`; hand-written programs cannot be re-targeted)"
        )
    prep = prepare(vfb.ifps, vfb.num_layers, pool_size=hw.num_cores, source=source)
    allocate(prep, list(range(cores)))
    if ddr_mib is not None and vfb.ddr_size > ddr_mib * 2**20:
        raise RepositoryError(
            f"{source}: needs {vfb.ddr_size / 2**20:.1f} MiB of DDR, the "
            f"tenant's quota is {ddr_mib} MiB"
        )
    return vfb


def read_model(
    repo: Path,
    name: str,
    hw: HardwareConfig,
    tenants: dict[str, TenantSpec],
    cache: dict[str, bytes] | None = None,
) -> ModelSpec:
    """Read, compile (ONNX) and validate every version of model ``name``; raises
    :class:`RepositoryError` (or another :class:`VfpgaError`) naming the file. ``cache``:
    ONNX file SHA-256 + options -> binary, so unchanged models are not recompiled."""
    check_name("model", name, str(repo))
    mdir = repo / name
    cfg_path = mdir / "config.toml"
    if not mdir.is_dir() or not cfg_path.is_file():
        raise ModelNotFound(f"{mdir}: no such model in the repository (expected {cfg_path})")
    cfg = _read_toml(cfg_path)
    extra = sorted(set(cfg) - {"tenant", "compile"})
    if extra:
        raise RepositoryError(
            f"{cfg_path}: unknown key(s) {', '.join(extra)} (known: tenant, [compile])"
        )
    tenant = cfg.get("tenant")
    if not isinstance(tenant, str) or tenant not in tenants:
        raise RepositoryError(
            f"{cfg_path}: 'tenant' must name a tenant of the server, got "
            f"{tenant!r} (tenants: {', '.join(sorted(tenants)) or 'none'})"
        )
    opts = cfg.get("compile", {})
    if not isinstance(opts, dict):
        raise RepositoryError(f"{cfg_path}: [compile] must be a table")
    opts = compile_options(opts, cfg_path, mdir, hw)
    spec = tenants[tenant]
    model = ModelSpec(name, tenant)
    for vdir in sorted(p for p in mdir.iterdir() if p.is_dir()):
        if not NAME_RE.match(vdir.name):
            continue
        vfb_path, onnx_path = vdir / "model.vfb", vdir / "model.onnx"
        if vfb_path.is_file():
            path = vfb_path
        elif onnx_path.is_file():
            path = onnx_path
        else:
            continue
        if path.stat().st_size > MAX_MODEL_BYTES:
            raise RepositoryError(f"{path}: larger than {MAX_MODEL_BYTES >> 20} MiB")
        data = path.read_bytes()
        if path is onnx_path:
            key = _cache_key(data, opts)
            blob = cache.get(key) if cache is not None else None
            if blob is None:
                blob = compile_onnx(path, hw, opts)
                if cache is not None:
                    cache[key] = blob
        else:
            blob = data
        vfb = validate_binary(blob, str(path), hw, spec.cores, spec.ddr_mib)
        model.versions[vdir.name] = ModelVersion(
            vdir.name, blob, vfb, hashlib.sha256(blob).hexdigest(), str(path)
        )
    if not model.versions:
        raise RepositoryError(
            f"{mdir}: no version folder with a model.vfb or model.onnx "
            f"(expected {mdir}/1/model.vfb)"
        )
    return model


__all__ = [
    "ModelNotFound",
    "ModelSpec",
    "ModelVersion",
    "RepositoryError",
    "TenantSpec",
    "compile_onnx",
    "model_names",
    "read_model",
    "read_tenants",
    "tenant_spec",
    "validate_binary",
]
