"""deploy_yaml.py -- the YAML half of tests/unit/test_deploy.sh: deploy/compose.yaml and
deploy/kubernetes/*.yaml parse, hang together (selectors, volumes, ConfigMap/Secret names and
keys) and give the programs only flags and values they accept.

Usage: /usr/bin/python3 tests/unit/deploy_yaml.py BUILD_DIR   (from the repository root)
Prints one line per check: "ok <what>", "FAIL <what>: <why>" or "SKIP <what>: <why>";
the shell suite counts them. Exit 77 when the yaml module is missing."""

import glob
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("SKIP yaml checks: python3-yaml is not installed (apt-get install python3-yaml)")
    sys.exit(77)

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
PROGRAMS = ("clusterf-ipvs", "clusterf-docker", "clusterfctl")
# The interface clusterf-docker is specified with, used only while the built binary is the
# stub whose --help lists no flags.
DOCKER_FLAGS_DOCUMENTED = {
    "etcd-endpoints", "etcd-prefix", "etcd-cacert", "etcd-cert", "etcd-key", "etcd-user",
    "etcd-password-file", "etcd-timeout", "docker-host", "hostname", "label-prefix",
    "docker-network", "publish-mode", "host-ipv4", "host-ipv6", "ttl", "dry-run", "log-level",
    "help", "version"}
K8S_NAMESPACE = "clusterf"


def report(ok, what, why=""):
    """One result line."""
    print(("ok   %s" % what) if ok else ("FAIL %s: %s" % (what, why)))
    return ok


def skip(what, why):
    print("SKIP %s: %s" % (what, why))


def help_flags(prog):
    """The flag names `prog --help` lists (lines "  --name[=METAVAR] ..."), or None."""
    path = os.path.join(BUILD, prog)
    if not os.access(path, os.X_OK):
        return None
    out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    return {m.group(1) for m in re.finditer(r"^  --([a-z0-9][a-z0-9-]*)", out, re.M)}


FLAGS = {p: help_flags(p) for p in PROGRAMS}


def known_flags(prog):
    """(flag set, where it came from) for prog; None when there is nothing to check against."""
    flags = FLAGS.get(prog)
    if flags:
        return flags, "%s --help" % prog
    if prog == "clusterf-docker":
        return DOCKER_FLAGS_DOCUMENTED, "the documented clusterf-docker flags (stub --help lists none)"
    return None, None


def env_name(flag):
    return "CLUSTERF_" + flag.upper().replace("-", "_")


def arg_flag(arg):
    """"--etcd-prefix=/x" -> "etcd-prefix"; None for a value that is not a flag."""
    m = re.match(r"^--?([a-z0-9][a-z0-9-]*)(=|$)", arg)
    return m.group(1) if m else None


def check_invocation(where, prog, args, env):
    """The flags and CLUSTERF_* variables given to prog exist, and prog itself accepts them
    with their values (prog ARGS --help under exactly that environment exits 0)."""
    flags, source = known_flags(prog)
    if flags is None:
        report(False, "%s: %s flags" % (where, prog), "%s/%s is not built" % (BUILD, prog))
        return
    bad = [a for a in args if arg_flag(a) is None or arg_flag(a) not in flags]
    report(not bad, "%s: %s args are flags of %s" % (where, prog, source),
           "unknown: %s" % " ".join(bad))
    envs = {env_name(f) for f in flags} | {"CLUSTERF_ETCD_PASSWORD"}
    badenv = sorted(k for k in env if k.startswith("CLUSTERF_") and k not in envs)
    report(not badenv, "%s: %s CLUSTERF_* variables name its flags" % (where, prog),
           "unknown: %s" % " ".join(badenv))
    if not FLAGS.get(prog):
        skip("%s: %s accepts the values" % (where, prog),
             "%s/%s --help lists no flags (not implemented in this build)" % (BUILD, prog))
        return
    full_env = {"PATH": "/usr/bin:/bin"}
    full_env.update({k: str(v) for k, v in env.items()})
    r = subprocess.run([os.path.join(BUILD, prog)] + list(args) + ["--help"], env=full_env,
                       capture_output=True, text=True, timeout=30)
    report(r.returncode == 0, "%s: %s accepts these args and variables" % (where, prog),
           "exit %d: %s" % (r.returncode, r.stderr.strip()[:300]))


def load_all(path):
    """Every document of a YAML file (None documents dropped), or None after a FAIL line."""
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        report(False, "%s parses" % path, str(e).replace("\n", " ")[:300])
        return None
    report(bool(docs), "%s parses (%d documents)" % (path, len(docs)), "no document")
    return docs


def expand(arg, env):
    """Kubernetes $(VAR) expansion in args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: str(env.get(m.group(1), m.group(0))), arg)


def container_env(c, objects, where):
    """The environment a container gets: envFrom ConfigMaps, then env (fieldRef values faked)."""
    env = {}
    for src in c.get("envFrom", []) or []:
        ref = src.get("configMapRef") or src.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in src else "Secret"
        obj = objects.get((kind, ref.get("name")))
        if report(obj is not None, "%s: envFrom %s %s exists" % (where, kind, ref.get("name")),
                  "not in deploy/kubernetes"):
            env.update(obj.get("data") or obj.get("stringData") or {})
    for e in c.get("env", []) or []:
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
        elif "fieldRef" in (e.get("valueFrom") or {}):
            env[e["name"]] = "node-1"
        else:
            report(False, "%s: env %s" % (where, e.get("name")), "no value or fieldRef")
    return env


def check_pod(where, spec, objects):
    """Volumes, Secrets and program flags of one pod template."""
    volumes = {v["name"]: v for v in spec.get("volumes", []) or []}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        cw = "%s/%s" % (where, c.get("name"))
        mounts = [m["name"] for m in c.get("volumeMounts", []) or []]
        missing = [m for m in mounts if m not in volumes]
        report(not missing, "%s: every volumeMount has a volume" % cw, "missing: %s" % missing)
        env = container_env(c, objects, cw)
        cmd = c.get("command") or []
        if cmd and cmd[0] in PROGRAMS:
            args = [expand(a, env) for a in cmd[1:] + (c.get("args") or [])]
            check_invocation(cw, cmd[0], args, env)
    for name, v in volumes.items():
        if "secret" in v:
            sname = v["secret"].get("secretName")
            sec = objects.get(("Secret", sname))
            if report(sec is not None, "%s: volume %s: Secret %s exists" % (where, name, sname),
                      "not in deploy/kubernetes"):
                keys = set((sec.get("data") or {})) | set((sec.get("stringData") or {}))
                want = {i["key"] for i in v["secret"].get("items", []) or []}
                report(want <= keys, "%s: volume %s: the Secret has keys %s" % (where, name, sorted(want)),
                       "it has %s" % sorted(keys))


def container(spec, name):
    return next((c for c in spec.get("containers", []) if c.get("name") == name), {})


def check_ipvs_daemonset(ds):
    """What clusterf-ipvs needs and nothing more."""
    spec = ds["spec"]["template"]["spec"]
    c = container(spec, "clusterf-ipvs")
    caps = (c.get("securityContext") or {}).get("capabilities") or {}
    w = "clusterf-ipvs DaemonSet"
    report(spec.get("hostNetwork") is True, "%s: hostNetwork" % w, "not set")
    report(bool(spec.get("nodeSelector")), "%s: nodeSelector" % w, "runs on every node")
    report(caps.get("add") == ["NET_ADMIN"] and "ALL" in (caps.get("drop") or []),
           "%s: capabilities drop ALL, add NET_ADMIN only" % w, "got %s" % caps)
    report(not (c.get("securityContext") or {}).get("privileged"), "%s: not privileged" % w, "privileged")
    report(isinstance(spec.get("terminationGracePeriodSeconds"), int),
           "%s: terminationGracePeriodSeconds" % w, "not set")
    res = c.get("resources") or {}
    report(bool(res.get("requests")) and bool(res.get("limits")), "%s: resources" % w, "got %s" % res)
    paths = {v["name"]: v["hostPath"]["path"] for v in spec.get("volumes", []) if "hostPath" in v}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    for path, ro in (("/run/clusterf", False), ("/lib/modules", True)):
        m = mounts.get(path)
        good = m is not None and paths.get(m["name"]) == path and bool(m.get("readOnly")) == ro
        report(good, "%s: hostPath %s mounted %s" % (w, path, "read-only" if ro else "read-write"),
               "mount %s, volumes %s" % (m, paths))
    inits = [i for i in spec.get("initContainers", []) or [] if (i.get("command") or [])[:2] == ["modprobe", "ip_vs"]]
    report(bool(inits), "%s: an initContainer runs modprobe ip_vs" % w, "none")


def check_docker_daemonset(ds):
    spec = ds["spec"]["template"]["spec"]
    c = container(spec, "clusterf-docker")
    w = "clusterf-docker DaemonSet"
    socks = [v for v in spec.get("volumes", []) if (v.get("hostPath") or {}).get("path") == "/var/run/docker.sock"]
    report(bool(socks), "%s: hostPath /var/run/docker.sock" % w, "not mounted")
    node_vars = {e["name"] for e in c.get("env", []) or []
                 if ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "spec.nodeName"}
    args = c.get("args") or []
    good = any(re.fullmatch(r"--?hostname=\$\((%s)\)" % "|".join(node_vars), a) for a in args) if node_vars else False
    report(good, "%s: --hostname is spec.nodeName (downward API)" % w, "args %s, env %s" % (args, node_vars))
    caps = (c.get("securityContext") or {}).get("capabilities") or {}
    report("ALL" in (caps.get("drop") or []) and not caps.get("add"), "%s: no capability" % w, "got %s" % caps)


def check_kubernetes():
    objects, docs_all = {}, []
    for path in sorted(glob.glob("deploy/kubernetes/*.yaml")):
        docs = load_all(path)
        for d in docs or []:
            if not isinstance(d, dict):
                report(False, "%s: a document is a mapping" % path, "got %r" % d)
                continue
            if d.get("kind") == "Kustomization":
                missing = [r for r in d.get("resources", []) if not os.path.exists(os.path.join("deploy/kubernetes", r))]
                report(not missing, "%s: resources exist" % path, "missing %s" % missing)
                continue
            name = (d.get("metadata") or {}).get("name")
            good = d.get("apiVersion") and d.get("kind") and name
            if report(bool(good), "%s: %s/%s has apiVersion, kind, metadata.name" % (path, d.get("kind"), name),
                      "got %s" % {k: d.get(k) for k in ("apiVersion", "kind", "metadata")}):
                objects[(d["kind"], name)] = d
                docs_all.append((path, d))
    for path, d in docs_all:
        if d["kind"] != "Namespace":
            report(d["metadata"].get("namespace") == K8S_NAMESPACE, "%s: %s/%s in namespace %s"
                   % (path, d["kind"], d["metadata"]["name"], K8S_NAMESPACE), "namespace %s" % d["metadata"].get("namespace"))
        if d["kind"] != "DaemonSet":
            continue
        where = "%s: DaemonSet %s" % (path, d["metadata"]["name"])
        sel = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        report(bool(sel) and all(labels.get(k) == v for k, v in sel.items()),
               "%s: selector matches the template labels" % where, "selector %s, labels %s" % (sel, labels))
        check_pod(where, d["spec"]["template"]["spec"], objects)
    ds = {n: d for (k, n), d in objects.items() if k == "DaemonSet"}
    for name, fn in (("clusterf-ipvs", check_ipvs_daemonset), ("clusterf-docker", check_docker_daemonset)):
        if report(name in ds, "DaemonSet %s exists" % name, "missing"):
            fn(ds[name])
    print("info kubernetes objects: %d" % len(docs_all))


def compose_env(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def interpolate(v):
    """Compose's ${VAR:-default} as its default, any other ${VAR...} as a placeholder."""
    if isinstance(v, dict):
        return {k: interpolate(x) for k, x in v.items()}
    if isinstance(v, list):
        return [interpolate(x) for x in v]
    if isinstance(v, str):
        return re.sub(r"\$\{[^}]*\}", "host-1", re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v))
    return v


def check_compose():
    path = "deploy/compose.yaml"
    docs = [interpolate(d) for d in load_all(path)]
    if not docs:
        return
    services = docs[0].get("services") or {}
    for name, svc in services.items():
        cmd = svc.get("command") or []
        if isinstance(cmd, str):
            cmd = cmd.split()
        # ${VAR:?msg} / ${VAR:-default} interpolation: a placeholder value.
        cmd = [re.sub(r"\$\{[^}]*\}", "host-1", a) for a in cmd]
        if cmd and cmd[0] in PROGRAMS:
            check_invocation("%s: %s" % (path, name), cmd[0], cmd[1:], compose_env(svc))
    ipvs = services.get("clusterf-ipvs") or {}
    report(ipvs.get("network_mode") == "host" and ipvs.get("cap_add") == ["NET_ADMIN"]
           and "ALL" in (ipvs.get("cap_drop") or []),
           "%s: clusterf-ipvs host network, NET_ADMIN only" % path,
           "network_mode %s cap_add %s" % (ipvs.get("network_mode"), ipvs.get("cap_add")))
    vols = ipvs.get("volumes") or []
    report("/lib/modules:/lib/modules:ro" in vols and any(str(v).split(":")[1:2] == ["/run/clusterf"] for v in vols),
           "%s: clusterf-ipvs /lib/modules ro and /run/clusterf" % path, "volumes %s" % vols)
    dock = services.get("clusterf-docker") or {}
    dargs = [str(a) for a in dock.get("command") or []]
    report(any(v.startswith("/var/run/docker.sock:") for v in dock.get("volumes") or [])
           and any(re.match(r"--?hostname=.", a) for a in dargs),
           "%s: clusterf-docker has docker.sock and --hostname" % path, "volumes/command incomplete")
    # Every clusterf service reaches the etcd service: through its name on the compose
    # network, or through the port etcd publishes on the host when in the host network.
    etcd = services.get("etcd") or {}
    published = {str(p).rsplit(":", 2)[-2] for p in etcd.get("ports") or [] if ":" in str(p)}
    for name, svc in services.items():
        args = [str(a) for a in svc.get("command") or []]
        eps = [a.split("=", 1)[1] for a in args if arg_flag(a) == "etcd-endpoints"]
        if not args or args[0] not in PROGRAMS:
            continue
        if svc.get("network_mode") == "host":
            good = eps and all(re.fullmatch(r"http://127\.0\.0\.1:(%s)" % "|".join(published or ["-"]), e) for e in eps[0].split(","))
        else:
            good = eps and all(e == "http://etcd:2379" for e in eps[0].split(","))
        report(bool(good), "%s: %s points at the etcd service" % (path, name), "endpoints %s" % eps)
        deps = svc.get("depends_on") or {}
        report("etcd" in deps, "%s: %s depends on etcd" % (path, name), "depends_on %s" % deps)


def main():
    check_kubernetes()
    check_compose()


if __name__ == "__main__":
    main()
