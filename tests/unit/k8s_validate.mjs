// k8s_validate.mjs -- validate Kubernetes objects in YAML files against Kubernetes' OpenAPI schema,
// with the npm package kubernetes-models (models and ajv validators generated from the Kubernetes
// OpenAPI spec). The generated validators allow unknown fields (the OpenAPI spec does not forbid
// them; the API server drops or, with strict field validation, rejects them), so every field is
// also looked up in the model's interface (its .d.ts), as `kubectl --validate=strict` would.
// Usage: node k8s_validate.mjs NODE_MODULES_DIR FILE.yaml...
// Prints "ok   FILE: KIND/NAME" or "FAIL FILE: KIND/NAME: errors" per object; exits 1 on any FAIL.
// Documents that are not Kubernetes API objects (kustomize's Kustomization) are left out.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const { parseAllDocuments } = await import(pathToFileURL(join(modules, "yaml/dist/index.js")));
const models = join(modules, "kubernetes-models");

// apiVersion "apps/v1" -> kubernetes-models/apps/v1/KIND, "v1" -> kubernetes-models/v1/KIND.
function modelFile(apiVersion, kind) {
    return join(models, apiVersion, kind);
}

// The fields of the interface in a .d.ts: name -> { type, file } where file resolves imports.
const ifaces = new Map();
function loadInterface(dts) {
    if (ifaces.has(dts)) return ifaces.get(dts);
    let fields = null;
    if (existsSync(dts)) {
        const text = readFileSync(dts, "utf8");
        const imports = new Map();
        for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
            const spec = m[2].replace(/\.js$/, "");
            imports.set(m[1], spec.startsWith(".") ? join(dirname(dts), spec + ".d.ts")
                                                   : join(modules, spec + ".d.ts"));
        }
        const body = text.match(/^export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)^\}/m);
        if (body) {
            fields = new Map();
            for (const m of body[1].matchAll(/^ {4}"([^"]+)"\??: (\{\n[\s\S]*?^ {4}\}|.+);$/gm)) {
                fields.set(m[1], { type: m[2], imports });
            }
        }
    }
    ifaces.set(dts, fields);
    return fields;
}

// Unknown fields of value against the interface in dts, as "path: unknown field" strings.
function unknownFields(value, dts, path, out) {
    const fields = loadInterface(dts);
    if (!fields || value === null || typeof value !== "object" || Array.isArray(value)) return out;
    for (const [k, v] of Object.entries(value)) {
        const f = fields.get(k);
        if (!f) { out.push(`${path}.${k}: unknown field`); continue; }
        checkType(v, f.type, f.imports, `${path}.${k}`, out);
    }
    return out;
}

function checkType(v, type, imports, path, out) {
    let m;
    if ((m = type.match(/^Array<(\w+)>$/))) {
        if (Array.isArray(v) && imports.has(m[1]))
            v.forEach((e, i) => unknownFields(e, imports.get(m[1]), `${path}[${i}]`, out));
    } else if ((m = type.match(/^\{\s*\[key: string\]: (\w+);\s*\}$/))) {
        if (v && typeof v === "object" && imports.has(m[1]))
            for (const [k, e] of Object.entries(v)) unknownFields(e, imports.get(m[1]), `${path}.${k}`, out);
    } else if (imports.has(type)) {
        unknownFields(v, imports.get(type), path, out);
    }
}

let failed = 0;
for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
        if (doc.errors.length) { console.log(`FAIL ${file}: YAML: ${doc.errors[0].message}`); failed++; continue; }
        const obj = doc.toJS();
        if (!obj) continue;
        const what = `${file}: ${obj.kind}/${obj.metadata?.name}`;
        if (String(obj.apiVersion).includes("kustomize.config.k8s.io")) continue;
        const base = modelFile(String(obj.apiVersion), String(obj.kind));
        if (!existsSync(base + ".js")) { console.log(`FAIL ${what}: no such kind in Kubernetes: ${obj.apiVersion} ${obj.kind}`); failed++; continue; }
        const Model = (await import(pathToFileURL(base + ".js")))[obj.kind];
        const errors = [];
        try { new Model(obj).validate(); } catch (e) { errors.push(e.message); }
        unknownFields(obj, base + ".d.ts", "", errors);
        if (errors.length) { console.log(`FAIL ${what}: ${errors.join("; ")}`); failed++; }
        else console.log(`ok   ${what}`);
    }
}
process.exit(failed ? 1 : 0);
