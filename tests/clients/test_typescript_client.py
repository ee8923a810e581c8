"""A TypeScript client from the live document, as client teams make it: openapi-typescript
generates the types without a warning, and a small openapi-fetch client (read a passenger, PUT it
back, read `error.detail` of a problem) compiles with tsc --strict. Then the same client, compiled
to JavaScript, runs against the live server under Node.

The tools are pinned in tests/clients/node (package-lock.json), installed by `make test` (`npm ci
--ignore-scripts`, target clients-node). Skipped only where there is no `node` on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
NODE_MODULES = NODE_DIR / "node_modules"
NODE = shutil.which("node")
TIMEOUT = 300

pytestmark = pytest.mark.skipif(NODE is None, reason="no node on PATH (CI has it)")

# Reads a passenger, sends it back unchanged as a PUT (every field but the id, which is in the
# path; its ETag as If-Match), and reads the detail of an error. Types only from the document.
CLIENT_TS = """\
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type PassengerRead = components["schemas"]["PassengerRead"];
type PassengerReplace = components["schemas"]["PassengerReplace"];
type Problem = components["schemas"]["Problem"];
type ValidationProblem = components["schemas"]["ValidationProblem"];

export function api(baseUrl: string, token: string) {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
}

export async function readThenPut(
  client: ReturnType<typeof api>,
  id: string,
): Promise<{ read: PassengerRead; put: PassengerRead; etag: string | null }> {
  const got = await client.GET("/api/v1/passengers/{passenger_id}", {
    params: { path: { passenger_id: id } },
  });
  if (got.error) {
    throw new Error(got.error.detail);
  }
  const read: PassengerRead = got.data;
  const { passenger_id, ...fields } = read;
  const body: PassengerReplace = fields;
  const etag = got.response.headers.get("ETag") ?? undefined;
  const put = await client.PUT("/api/v1/passengers/{passenger_id}", {
    params: { path: { passenger_id }, header: { "If-Match": etag } },
    body,
  });
  if (put.error) {
    throw new Error(`${put.error.status} ${put.error.detail}`);
  }
  return { read, put: put.data, etag: put.response.headers.get("ETag") };
}

export async function detailOfMissing(client: ReturnType<typeof api>, id: string): Promise<string> {
  const { data, error } = await client.GET("/api/v1/passengers/{passenger_id}", {
    params: { path: { passenger_id: id } },
  });
  if (data !== undefined) {
    throw new Error(`passenger ${data.passenger_id} exists`);
  }
  const problem: Problem = error;
  return problem.detail;
}

export async function fieldsOfInvalid(client: ReturnType<typeof api>): Promise<string[]> {
  const { error } = await client.PATCH("/api/v1/passengers/{passenger_id}", {
    params: { path: { passenger_id: "1" } },
    body: { pclass: 9 },
  });
  if (error === undefined || !isValidationProblem(error)) {
    throw new Error("expected a 422");
  }
  return error.errors.map((item) => `${item.field}: ${item.message}`);
}

// A problem may carry members of its own (additionalProperties): a 422's `errors` is told
// apart by its status.
function isValidationProblem(problem: Problem | ValidationProblem): problem is ValidationProblem {
  return problem.status === 422 && Array.isArray(problem.errors);
}
"""

# Runs the compiled client against the server: argv = base URL, token, an existing id.
MAIN_TS = """\
import { api, detailOfMissing, fieldsOfInvalid, readThenPut } from "./client.js";

declare const process: { argv: string[] }; // Node's, without @types/node

const [baseUrl = "", token = "", id = ""] = process.argv.slice(2);
const client = api(baseUrl, token);
const { read, put, etag } = await readThenPut(client, id);
const missing = await detailOfMissing(client, "nobody");
const invalid = await fieldsOfInvalid(client);
console.log(JSON.stringify({ read, put, etag, missing, invalid }));
"""

TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "target": "es2022",
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "lib": ["es2022", "dom"],
        "types": [],
        "skipLibCheck": False,
        "noUncheckedIndexedAccess": True,
        "outDir": "out",
    },
    "files": ["schema.d.ts", "client.ts", "main.ts"],
}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def node_tool(package: str, script: str) -> str:
    path = NODE_MODULES / package / script
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make clients-node` (npm ci in {NODE_DIR})")
    return str(path)


@pytest.fixture(scope="module")
def project(live_document: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the generated types, the client, its tsconfig, and the pinned tools."""
    folder = tmp_path_factory.mktemp("typescript-client")
    (folder / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    (folder / "package.json").write_text('{"type": "module", "private": true}\n')
    (folder / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    (folder / "client.ts").write_text(CLIENT_TS)
    (folder / "main.ts").write_text(MAIN_TS)
    assert NODE is not None
    generator = node_tool("openapi-typescript", "bin/cli.js")
    result = run([NODE, generator, str(live_document), "-o", "schema.d.ts"], cwd=folder)
    output = (result.stdout + result.stderr).strip()
    (folder / "generator-output.txt").write_text(output)
    assert result.returncode == 0, output
    return folder


def test_openapi_typescript_prints_no_warning(project: Path) -> None:
    output = (project / "generator-output.txt").read_text()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    # All it prints on success: its version and the file it wrote (warnings and errors are
    # lines of their own: redocly's lint of the document, unsupported constructs).
    assert len(lines) == 2, output
    assert lines[0].startswith("✨ openapi-typescript "), output
    assert lines[1].startswith("🚀 ") and "schema.d.ts" in lines[1], output
    assert (project / "schema.d.ts").stat().st_size > 0


def test_the_client_compiles_with_tsc_strict(project: Path) -> None:
    assert NODE is not None
    tsc = node_tool("typescript", "bin/tsc")
    result = run([NODE, tsc, "--strict", "--noEmit", "-p", "tsconfig.json"], cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_tsc_refuses_what_the_document_forbids(project: Path) -> None:
    # The check has teeth: a read's `sex` is not a port, and a read with its id is not a PUT body
    # of a fresh object literal (PassengerReplace has no `passenger_id`).
    (project / "wrong.ts").write_text(
        'import type { components } from "./schema.js";\n'
        'type S = components["schemas"];\n'
        'export function port(read: S["PassengerRead"]): S["Port"] { return read.sex; }\n'
        'export const body: S["PassengerReplace"] = '
        '{ passenger_id: "1", survived: true, pclass: 1, name: "A", sex: "male" };\n'
    )
    assert NODE is not None
    tsc = node_tool("typescript", "bin/tsc")
    config = {**TSCONFIG, "files": ["schema.d.ts", "wrong.ts"]}
    (project / "tsconfig.wrong.json").write_text(json.dumps(config))
    result = run([NODE, tsc, "--noEmit", "-p", "tsconfig.wrong.json"], cwd=project)
    assert result.returncode != 0
    assert "wrong.ts(3," in result.stdout and "wrong.ts(4," in result.stdout, result.stdout


def test_the_compiled_client_reads_puts_and_reads_problems(
    project: Path, live_url: str, bearer_token: str, tables: str
) -> None:
    import httpx

    created = httpx.post(
        f"{live_url}/api/v1/passengers",
        json={
            "passenger_id": "1",
            "survived": True,
            "pclass": 1,
            "name": "Futrelle, Mrs. Jacques Heath",
            "sex": "female",
            "age": 35,
            "sibsp": 1,
            "ticket": "113803",
            "fare": 53.1,
            "cabin": "C123",
            "embarked": "S",
        },
        headers={"Authorization": f"Bearer {bearer_token}"},
        timeout=30.0,
    )
    assert created.status_code == 201, created.text
    assert NODE is not None
    tsc = node_tool("typescript", "bin/tsc")
    compiled = run([NODE, tsc, "-p", "tsconfig.json"], cwd=project)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    result = run([NODE, "out/main.js", live_url, bearer_token, "1"], cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["read"] == created.json()
    assert outcome["put"] == created.json()
    assert outcome["etag"] == '"2"'
    assert outcome["missing"] == "no passenger nobody"
    assert outcome["invalid"] == ["body.pclass: Input should be less than or equal to 3"]
