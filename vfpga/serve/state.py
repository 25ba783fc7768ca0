"""The server's durable state: one SQLite file, ``STATE_DIR/state.sqlite``.

It holds the tenants (their specification, token hashes only, and the physical cores they
hold), the loaded models (tenant, versions and each version's binary SHA-256), the
binaries themselves (so a restart needs neither the repository nor a recompile), and the
compile cache of ONNX models. Every change is one transaction, written through before the
server answers: after a crash (kill -9) or a restart the same tenants, models and core
allocations come back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from vfpga.serve.repository import TenantSpec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, spec TEXT NOT NULL,
                                    cores TEXT NOT NULL, ord INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, tenant TEXT NOT NULL,
                                   versions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS binaries (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS compile_cache (key TEXT PRIMARY KEY, data BLOB NOT NULL);
"""


class State:
    """The state database (thread-safe: one connection behind a lock)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "state.sqlite"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ reads
    def initialized(self, hw_fingerprint: str) -> bool:
        """Whether the state was set up before (for this hardware; another hardware's
        state is refused with ``ValueError``)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='hw'").fetchone()
        if row is None:
            return False
        if row[0] != hw_fingerprint:
            raise ValueError(
                f"{self.path}: this state belongs to another hardware "
                "configuration; use another --state-dir or the same --hw"
            )
        return True

    def tenants(self) -> list[tuple[TenantSpec, list[int]]]:
        with self._lock:
            rows = self._db.execute("SELECT spec, cores FROM tenants ORDER BY ord").fetchall()
        return [(TenantSpec(**json.loads(s)), json.loads(c)) for s, c in rows]

    def models(self) -> list[tuple[str, str, dict[str, str]]]:
        """(model, tenant, version -> binary SHA-256) of every loaded model."""
        with self._lock:
            rows = self._db.execute("SELECT name, tenant, versions FROM models ORDER BY name")
            return [(n, t, json.loads(v)) for n, t, v in rows.fetchall()]

    def binary(self, sha256: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM binaries WHERE sha256=?", (sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    def compile_cache(self) -> dict[str, bytes]:
        with self._lock:
            rows = self._db.execute("SELECT key, data FROM compile_cache").fetchall()
        return {k: bytes(d) for k, d in rows}

    # ----------------------------------------------------------------- writes
    def _tx(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def reset(self) -> None:
        """Forget everything (a first start that did not complete)."""
        self._tx(
            [
                (f"DELETE FROM {t}", ())
                for t in ("meta", "tenants", "models", "binaries", "compile_cache")
            ]
        )

    def mark_initialized(self, hw_fingerprint: str) -> None:
        self._tx([("INSERT OR REPLACE INTO meta VALUES ('hw', ?)", (hw_fingerprint,))])

    def put_tenant(self, spec: TenantSpec, cores: list[int]) -> None:
        self._tx(
            [
                (
                    "INSERT INTO tenants VALUES (?, ?, ?, COALESCE((SELECT ord FROM tenants "
                    "WHERE name=?), (SELECT COALESCE(MAX(ord), 0) + 1 FROM tenants))) "
                    "ON CONFLICT(name) DO UPDATE SET spec=excluded.spec, cores=excluded.cores",
                    (
                        spec.name,
                        json.dumps(spec.as_dict() | {"name": spec.name}),
                        json.dumps(cores),
                        spec.name,
                    ),
                )
            ]
        )

    def set_cores(self, tenant: str, cores: list[int]) -> None:
        self._tx([("UPDATE tenants SET cores=? WHERE name=?", (json.dumps(cores), tenant))])

    def remove_tenant(self, tenant: str) -> None:
        self._tx(
            [
                ("DELETE FROM models WHERE tenant=?", (tenant,)),
                ("DELETE FROM tenants WHERE name=?", (tenant,)),
                (
                    "DELETE FROM binaries WHERE sha256 NOT IN (SELECT value FROM models, "
                    "json_each(models.versions))",
                    (),
                ),
            ]
        )

    def put_model(
        self,
        name: str,
        tenant: str,
        binaries: dict[str, bytes],
        versions: dict[str, str],
        cache: dict[str, bytes],
    ) -> None:
        """Record model ``name`` (version -> sha256) with its binaries and new compile
        cache entries, in one transaction."""
        stmts: list[tuple[str, tuple[object, ...]]] = [
            ("INSERT OR IGNORE INTO binaries VALUES (?, ?)", (sha, blob))
            for sha, blob in binaries.items()
        ]
        stmts += [
            ("INSERT OR IGNORE INTO compile_cache VALUES (?, ?)", (k, v)) for k, v in cache.items()
        ]
        stmts.append(
            ("INSERT OR REPLACE INTO models VALUES (?, ?, ?)", (name, tenant, json.dumps(versions)))
        )
        stmts.append(
            (
                "DELETE FROM binaries WHERE sha256 NOT IN (SELECT value FROM models, "
                "json_each(models.versions))",
                (),
            )
        )
        self._tx(stmts)

    def remove_model(self, name: str) -> None:
        self._tx(
            [
                ("DELETE FROM models WHERE name=?", (name,)),
                (
                    "DELETE FROM binaries WHERE sha256 NOT IN (SELECT value FROM models, "
                    "json_each(models.versions))",
                    (),
                ),
            ]
        )


__all__ = ["State"]
