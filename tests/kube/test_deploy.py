"""deploy/: every manifest against the Kubernetes client's models, the CRD against Calico's rules.

The client's models ignore unknown keys, so a misspelt field (``hostNetwrk``) would pass a
plain deserialisation: :func:`unknown_keys` walks each document against the models'
``attribute_map``/``openapi_types`` and names every key no model declares.

The CRD's ``openAPIV3Schema`` is checked with a small structural-schema validator (the
keywords the CRD uses) and its ``x-kubernetes-validations`` rules are evaluated with
cel-python, for a corpus of good and bad PacketCaptures taken from
tests/foundation/test_foundation_validation.py; the schema's verdict must equal
packetcapture's own, except for the rules a CRD cannot express (listed in ``SCHEMA_GAPS``).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import packetcapture as pc

kubernetes = pytest.importorskip("kubernetes")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): "V1CustomResourceDefinition",
}


def manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def the(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return doc


# --- every manifest against the client's models ----------------------------------------------


def _model(name: str) -> Any:
    return getattr(kubernetes.client, name)


def unknown_keys(value: Any, type_name: str, path: str = "") -> list[str]:
    """Every key of ``value`` that the model ``type_name`` (recursively) does not declare."""
    # Client versions spell containers list[X]/dict(str, X) or List[X]/Dict[str, X].
    lowered = type_name[:5].lower()
    if lowered.startswith("list["):
        inner = type_name[5:-1]
        return [k for i, v in enumerate(value) for k in unknown_keys(v, inner, f"{path}[{i}]")]
    if lowered.startswith(("dict(", "dict[")):
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        return [k for key, v in value.items() for k in unknown_keys(v, inner, f"{path}.{key}")]
    if not type_name.startswith("V1"):  # str, int, bool, object: free-form
        return []
    model = _model(type_name)
    by_wire = {wire: attr for attr, wire in model.attribute_map.items()}
    found = []
    for key, v in value.items():
        if key not in by_wire:
            found.append(f"{path}.{key}".lstrip("."))
        elif v is not None:
            found += unknown_keys(v, model.openapi_types[by_wire[key]], f"{path}.{key}")
    return found


def test_every_manifest_is_a_known_kind_and_in_the_kustomization() -> None:
    docs = manifests()
    assert {(d["apiVersion"], d["kind"]) for _, d in docs} <= set(MODELS)
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


@pytest.mark.parametrize(
    ("source", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_manifest_deserializes_without_unknown_fields(source: str, doc: dict[str, Any]) -> None:
    type_name = MODELS[doc["apiVersion"], doc["kind"]]
    assert unknown_keys(doc, type_name) == [], source
    client = kubernetes.client.ApiClient()
    try:
        obj = client._ApiClient__deserialize(copy.deepcopy(doc), type_name)
    finally:
        client.close()
    assert type(obj).__name__ == type_name
    assert obj.metadata.name == doc["metadata"]["name"]


def test_a_misspelt_field_is_caught() -> None:
    ds = copy.deepcopy(the("DaemonSet", "packetcapture-node"))
    ds["spec"]["template"]["spec"]["hostNetwrk"] = True
    ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilites"] = {}
    assert sorted(unknown_keys(ds, "V1DaemonSet")) == [
        "spec.template.spec.containers[0].securityContext.capabilites",
        "spec.template.spec.hostNetwrk",
    ]
    crd = copy.deepcopy(the("CustomResourceDefinition", "packetcaptures.projectcalico.org"))
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["propertes"] = {}
    assert unknown_keys(crd, "V1CustomResourceDefinition") == [
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.propertes"
    ]


# --- the DaemonSet and what the CLI expects of it ---------------------------------------------


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = the("DaemonSet", "packetcapture-node")["spec"]["template"]["spec"]
    return spec


def test_daemonset_runs_on_every_node_with_only_net_raw() -> None:
    spec = _pod_spec()
    assert spec["hostNetwork"] is True
    assert spec["tolerations"] == [{"operator": "Exists"}]
    (container,) = spec["containers"]
    caps = container["securityContext"]["capabilities"]
    assert caps == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert container["securityContext"]["privileged"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert set(container["resources"]) == {"requests", "limits"}
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"]["host"] == "127.0.0.1"  # hostNetwork: node loopback only
    assert spec["terminationGracePeriodSeconds"] >= 10


def test_daemonset_mounts_the_capture_dir_from_the_host() -> None:
    from packetcapture._defaults import DEFAULT_CAPTURE_DIR

    spec = _pod_spec()
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert volumes[mounts[DEFAULT_CAPTURE_DIR]]["hostPath"]["path"] == DEFAULT_CAPTURE_DIR
    args = spec["containers"][0]["args"]
    assert args[args.index("--capture-dir") + 1] == DEFAULT_CAPTURE_DIR


def test_daemonset_is_found_the_way_the_cli_looks_for_it() -> None:
    from packetcapture.kube._files import AGENT_LABEL_SELECTOR, DEFAULT_AGENT_NAMESPACE

    ds = the("DaemonSet", "packetcapture-node")
    key, _, value = AGENT_LABEL_SELECTOR.partition("=")
    assert ds["metadata"]["namespace"] == DEFAULT_AGENT_NAMESPACE
    assert ds["spec"]["template"]["metadata"]["labels"][key] == value
    assert ds["spec"]["selector"]["matchLabels"][key] == value
    assert the("Namespace", DEFAULT_AGENT_NAMESPACE)
    # its service account and config map exist, in its namespace
    account = the("ServiceAccount", _pod_spec()["serviceAccountName"])
    assert account["metadata"]["namespace"] == DEFAULT_AGENT_NAMESPACE
    for source in _pod_spec()["containers"][0]["envFrom"]:
        cm = the("ConfigMap", source["configMapRef"]["name"])
        assert cm["metadata"]["namespace"] == DEFAULT_AGENT_NAMESPACE


def test_configmap_and_args_are_what_packetcapture_node_reads() -> None:
    from packetcapture.cli import build_parser
    from packetcapture.cli._node import ENVIRONMENT

    known = {variable for variable, _, _ in ENVIRONMENT.values()}
    cm = the("ConfigMap", "packetcapture-node")
    assert set(cm["data"]) <= known
    container = _pod_spec()["containers"][0]
    assert {e["name"] for e in container["env"]} <= known
    args = build_parser().parse_args(["node", *container["args"]])
    port = container["livenessProbe"]["httpGet"]["port"]
    assert args.health_port == port == container["readinessProbe"]["httpGet"]["port"]


def test_dockerfile_installs_the_kubernetes_extra_and_runs_node() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    assert "'.[kubernetes]'" in text
    assert 'ENTRYPOINT ["packetcapture", "node"]' in text


# --- RBAC ------------------------------------------------------------------------------------


def _grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


PC = "projectcalico.org"
#: What each client method the kube modules call needs from RBAC. A custom-object call does
#: not name its resource: the agent lists PacketCaptures and WorkloadEndpoints, reads and
#: writes the status of PacketCaptures only.
CALL_GRANTS: dict[str, set[tuple[str, str, str]]] = {
    "list_cluster_custom_object": {
        (PC, r, v) for r in ("packetcaptures", "workloadendpoints") for v in ("list", "watch")
    },
    "list_namespaced_custom_object": {(PC, "packetcaptures", "list")},
    "get_namespaced_custom_object": {(PC, "packetcaptures", "get")},
    "replace_namespaced_custom_object_status": {(PC, "packetcaptures/status", "update")},
    "list_pod_for_all_namespaces": {("", "pods", "list"), ("", "pods", "watch")},
    "list_namespace": {("", "namespaces", "list"), ("", "namespaces", "watch")},
    "list_service_account_for_all_namespaces": {
        ("", "serviceaccounts", "list"),
        ("", "serviceaccounts", "watch"),
    },
    "create_namespaced_event": {("", "events", "create")},
    "list_namespaced_pod": {("", "pods", "list")},
    # WebSocket exec is a GET; the API server also checks create since Kubernetes 1.30+.
    "connect_get_namespaced_pod_exec": {("", "pods/exec", "get"), ("", "pods/exec", "create")},
}
# A client call: a method of CoreV1Api/CustomObjectsApi on an object named like an API
# (core, custom, api, core_api), not a same-named method of our own classes.
_CALL = re.compile(r"\b(?:core|custom|api|core_api)\.([a-z_]+)\b")
KUBE = Path(pc.__file__).parent / "kube"
AGENT_MODULES = ["_agent.py", "_reflector.py", "_status.py", "_endpoints.py", "_client.py"]
USER_MODULES = ["_files.py", "_exec.py", "_describe.py"]


def _client_calls(modules: list[str]) -> set[str]:
    api = {
        m for cls in ("CoreV1Api", "CustomObjectsApi") for m in dir(getattr(kubernetes.client, cls))
    }
    found = set()
    for module in modules:
        path = KUBE / module
        if path.exists():
            found |= {m for m in _CALL.findall(path.read_text()) if m in api}
    return found


def _needed(
    modules: list[str], overrides: dict[str, set[tuple[str, str, str]]] | None = None
) -> set[tuple[str, str, str]]:
    table = {**CALL_GRANTS, **(overrides or {})}
    calls = _client_calls(modules)
    assert calls <= set(table), f"RBAC for {sorted(calls - set(table))} unknown"
    return set().union(*(table[c] for c in calls))


def test_agent_role_grants_exactly_what_the_agent_calls() -> None:
    grants = _grants(the("ClusterRole", "packetcapture-node"))
    assert grants == _needed(AGENT_MODULES)
    assert not any("*" in g for grant in grants for g in grant)
    binding = the("ClusterRoleBinding", "packetcapture-node")
    assert binding["roleRef"]["name"] == "packetcapture-node"
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": _pod_spec()["serviceAccountName"],
            "namespace": "packetcapture-system",
        }
    ]


def test_user_roles_grant_exactly_what_the_cli_calls() -> None:
    user = _grants(the("ClusterRole", "packetcapture-user"))
    exec_role = the("Role", "packetcapture-user-exec")
    assert exec_role["metadata"]["namespace"] == "packetcapture-system"
    namespaced = _grants(exec_role)
    # pods and exec only in the agents' namespace; captures anywhere
    assert all(resource.startswith("pods") for _, resource, _ in namespaced)
    assert not any(resource.startswith("pods") for _, resource, _ in user)
    # `get -A` lists PacketCaptures cluster-wide (and nothing else)
    cli = {"list_cluster_custom_object": {(PC, "packetcaptures", "list")}}
    assert user | namespaced == _needed(USER_MODULES, cli)


# --- the CRD ---------------------------------------------------------------------------------


def crd() -> dict[str, Any]:
    return the("CustomResourceDefinition", "packetcaptures.projectcalico.org")


def schema() -> dict[str, Any]:
    (version,) = crd()["spec"]["versions"]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def test_crd_is_calicos_shape() -> None:
    spec = crd()["spec"]
    assert spec["group"] == "projectcalico.org"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "PacketCapture",
        "listKind": "PacketCaptureList",
        "plural": "packetcaptures",
        "singular": "packetcapture",
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v3", True, True)
    assert version["subresources"] == {"status": {}}
    props = schema()["properties"]
    assert props["spec"]["properties"]["selector"]["default"] == "all()"
    files = props["status"]["properties"]["files"]
    assert files["x-kubernetes-list-type"] == "atomic"
    assert files["items"]["properties"]["state"]["enum"] == [
        "Capturing",
        "Finished",
        "Scheduled",
        "Error",
        "WaitingForTraffic",
    ]
    rules = [r["rule"] for r in props["spec"]["x-kubernetes-validations"]]
    assert rules == ["!has(self.endTime) || !has(self.startTime) || self.endTime > self.startTime"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Selector", "Start", "End", "Age"]


def test_crd_matches_the_resource_the_code_watches() -> None:
    from packetcapture.kube._client import CaptureResource

    res = CaptureResource()
    spec = crd()["spec"]
    assert (res.group, res.version, res.plural) == (
        spec["group"],
        spec["versions"][0]["name"],
        spec["names"]["plural"],
    )


def test_status_states_are_the_models() -> None:
    enum = schema()["properties"]["status"]["properties"]["files"]["items"]["properties"]["state"]
    assert sorted(enum["enum"]) == sorted(s.value for s in pc.CaptureState)


def _structural_problems(node: dict[str, Any], path: str) -> list[str]:
    """The structural-schema rules this CRD could break (apiextensions' own checks)."""
    problems = []
    int_or_string = node.get("x-kubernetes-int-or-string")
    if int_or_string:
        if "type" in node or node.get("anyOf") != [{"type": "integer"}, {"type": "string"}]:
            problems.append(f"{path}: int-or-string must be anyOf [integer, string] with no type")
    elif "type" not in node and path != "metadata":
        problems.append(f"{path}: no type")
    for key, child in node.get("properties", {}).items():
        problems += _structural_problems(child, f"{path}.{key}")
    if "items" in node:
        problems += _structural_problems(node["items"], f"{path}[]")
    listed = "x-kubernetes-list-type" in node
    if node.get("type") == "array" and not listed and node["items"].get("type") == "object":
        problems.append(f"{path}: list of objects without x-kubernetes-list-type")
    return problems


def test_crd_schema_is_structural() -> None:
    assert _structural_problems(schema(), "") == []
    assert schema()["properties"]["metadata"] == {"type": "object"}


# The schema validator: the keywords deploy/crd.yaml uses, as apiextensions applies them
# (pattern only to strings, minimum/maximum only to numbers, unknown fields refused as
# `kubectl apply --validate=strict` / fieldValidation=Strict does).


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "boolean": lambda v: isinstance(v, bool),
}


def _date_time_ok(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def schema_problems(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    if node.get("x-kubernetes-int-or-string"):
        if not (_is_int(value) or isinstance(value, str)):
            return [f"{path}: must be an integer or a string"]
    elif "type" in node and not _TYPES[node["type"]](value):
        return [f"{path}: must be of type {node['type']}"]
    problems = []
    if "enum" in node and value not in node["enum"]:
        problems.append(f"{path}: not one of {node['enum']}")
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            problems.append(f"{path}: does not match {node['pattern']}")
        if "maxLength" in node and len(value) > node["maxLength"]:
            problems.append(f"{path}: longer than {node['maxLength']}")
        if node.get("format") == "date-time" and not _date_time_ok(value):
            problems.append(f"{path}: not a date-time")
    if _is_int(value):
        if "minimum" in node and value < node["minimum"]:
            problems.append(f"{path}: below {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            problems.append(f"{path}: above {node['maximum']}")
    if isinstance(value, list):
        if "maxItems" in node and len(value) > node["maxItems"]:
            problems.append(f"{path}: more than {node['maxItems']} items")
        for i, item in enumerate(value):
            problems += schema_problems(item, node["items"], f"{path}[{i}]")
    if isinstance(value, dict) and "properties" in node:
        for key in node.get("required", []):
            if key not in value:
                problems.append(f"{path}.{key}: required")
        for key, item in value.items():
            if key not in node["properties"]:
                problems.append(f"{path}.{key}: unknown field")
            else:
                problems += schema_problems(item, node["properties"][key], f"{path}.{key}")
    if not problems:
        problems += _cel_problems(value, node, path)
    return problems


def _apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "properties" in node:
        out = dict(value)
        for key, child in node["properties"].items():
            if key not in out and "default" in child:
                out[key] = child["default"]
            if key in out:
                out[key] = _apply_defaults(out[key], child)
        return out
    if isinstance(value, list) and "items" in node:
        return [_apply_defaults(v, node["items"]) for v in value]
    return value


def _cel_problems(value: Any, node: dict[str, Any], path: str) -> list[str]:
    rules = node.get("x-kubernetes-validations", [])
    if not rules:
        return []
    celpy = pytest.importorskip("celpy")
    from celpy import celtypes

    def to_cel(v: Any, n: dict[str, Any]) -> Any:
        # Kubernetes gives date-time strings to CEL as timestamps, int-or-string as dyn.
        if isinstance(v, dict):
            props = n.get("properties", {})
            return celtypes.MapType(
                {celtypes.StringType(k): to_cel(x, props.get(k, {})) for k, x in v.items()}
            )
        if isinstance(v, list):
            return celtypes.ListType([to_cel(x, n.get("items", {})) for x in v])
        if isinstance(v, str) and n.get("format") == "date-time":
            return celtypes.TimestampType(v)
        if _is_int(v):
            return celtypes.IntType(v)
        return celtypes.StringType(v)

    def split(s: Any, sep: Any) -> Any:  # Kubernetes' CEL strings library
        return celtypes.ListType([celtypes.StringType(p) for p in str(s).split(str(sep))])

    env = celpy.Environment()
    problems = []
    for rule in rules:
        program = env.program(env.compile(rule["rule"]), functions={"split": split})
        result = program.evaluate({"self": to_cel(value, node)})
        if not isinstance(result, celtypes.BoolType):
            raise AssertionError(f"{rule['rule']!r} gave {result!r} for {value!r}")
        if not result:
            problems.append(f"{path}: {rule['message']}")
    return problems


def crd_verdict(spec: dict[str, Any]) -> list[str]:
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": {"name": "cap", "namespace": "default"},
        "spec": spec,
    }
    return schema_problems(_apply_defaults(doc, schema()), schema())


def own_verdict(spec: dict[str, Any], **meta: Any) -> bool:
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": {"name": "cap", "namespace": "default", **meta},
        "spec": spec,
    }
    try:
        pc.from_dict(doc)
    except pc.ValidationError:
        return False
    return True


PROTOCOLS = ["TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite", 1, 255, 47, "6", "006"]
PROTOCOLS += ["tcp", "Udp", "icmpv6", "GRE", 0, 256, -1, True, "0", "00", "256", " 6", "+6"]
PORTS = [80, "80", "080", "8000:8080", 1, 65535, "1:65535", "5:5"]
PORTS += [0, 65536, -1, "0", "0:10", "10:70000", "20:10", "http", "80-90", True, "1:", ":1"]
PORTS += ["80:90:100", " 80", "65536"]
TIMES = ["2021-08-26T12:00:00Z", "2021-08-26T12:00:00.5+02:00", "2021-08-26T12:00:00"]
TIMES += ["2021-08-26", "yesterday", "2021-13-01T00:00:00Z", 5]

CORPUS: list[dict[str, Any]] = [
    {},
    {"selector": "all()"},
    {"filters": []},
    {"filters": [{}]},
    {"filters": [{"ports": [53]}]},
    {"filter": [{"protocol": "TCP"}]},
    {"filters": [{"protocol": "TCP", "port": [80]}]},
    *({"filters": [{"protocol": p}]} for p in PROTOCOLS),
    *({"filters": [{"protocol": "TCP", "ports": [80, p]}]} for p in PORTS),
    *({"filters": [{"protocol": p, "ports": [53]}]} for p in PROTOCOLS),
    *({"startTime": t} for t in TIMES),
    *({"endTime": t} for t in TIMES),
    {"startTime": "2021-08-26T12:00:00Z", "endTime": "2021-08-26T12:00:00Z"},
    {"startTime": "2021-08-26T12:30:00Z", "endTime": "2021-08-26T12:00:00Z"},
    {"startTime": "2021-08-26T12:00:00Z", "endTime": "2021-08-26T12:00:01Z"},
    # the same instant in other offsets: CEL compares timestamps, not text
    {"startTime": "2021-08-26T14:00:00+02:00", "endTime": "2021-08-26T12:00:00Z"},
    {"startTime": "2021-08-26T13:00:00+02:00", "endTime": "2021-08-26T12:00:00Z"},
]


@pytest.mark.parametrize("spec", CORPUS, ids=repr)
def test_crd_schema_agrees_with_calicos_rules(spec: dict[str, Any]) -> None:
    assert (crd_verdict(spec) == []) == own_verdict(spec), crd_verdict(spec)


#: What Calico's validator refuses and no CRD schema can: each accepted by the schema.
SCHEMA_GAPS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"selector": "malformed$&/?!"}, {}),  # no CEL function parses Calico selectors
    ({"selector": "malformed&"}, {}),
    ({}, {"name": "under_score"}),  # metadata.name: the API server checks its own rules
    ({}, {"labels": {"projectcalico.org/namespace": "x"}}),  # labels are not in the schema
]


@pytest.mark.parametrize(("spec", "meta"), SCHEMA_GAPS, ids=repr)
def test_what_the_schema_cannot_express(spec: dict[str, Any], meta: dict[str, Any]) -> None:
    assert crd_verdict(spec) == []
    assert own_verdict(spec, **meta) is False


def test_the_validator_catches_what_it_should() -> None:
    # guards the corpus test against a validator that accepts everything
    assert crd_verdict({"filters": [{"protocol": "ICMP", "ports": [80]}]}) == [
        ".spec.filters[0]: protocol does not accept ports (only TCP, UDP, SCTP)"
    ]
    assert crd_verdict({"filters": [{"protocol": "TCP", "ports": ["20:10"]}]}) == [
        ".spec.filters[0].ports[0]: minimum port number is greater than maximum port number "
        "in port range"
    ]
    assert crd_verdict({"selector": 5}) == [".spec.selector: must be of type string"]
