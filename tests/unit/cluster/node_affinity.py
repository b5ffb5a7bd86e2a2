"""A node-affinity evaluator written from the Kubernetes API reference, independent of torchstack.

`requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`: the terms are ORed; a term
matches when all of its matchExpressions hold; a term with no expressions matches nothing.
Operators (k8s.io/apimachinery selection semantics for node selectors):
- In: the label is present and its value is one of `values`;
- NotIn: the label is absent, or its value is none of `values`;
- Exists / DoesNotExist: the label is present / absent (`values` must be empty);
- Gt / Lt: the label is present, its value parses as a 64-bit integer, `values` holds exactly
  one integer, and the label's integer is strictly greater / less. A value that is not an
  integer never satisfies Gt or Lt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_INT64 = re.compile(r"[+-]?[0-9]+")  # Go's strconv.ParseInt(s, 10, 64) accepts a sign


def _integer(text: str) -> int | None:
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values = list(expression.get("values") or [])
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        assert not values, "Exists takes no values"
        return present
    if operator == "DoesNotExist":
        assert not values, "DoesNotExist takes no values"
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        mine, theirs = _integer(labels[key]), _integer(values[0])
        if mine is None or theirs is None:
            return False
        return mine > theirs if operator == "Gt" else mine < theirs
    raise ValueError(f"unknown operator {operator!r}")


def term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or []
    return bool(expressions) and all(expression_holds(e, labels) for e in expressions)


def schedulable(pod_spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether the pod's nodeSelector and required node affinity admit a node with `labels`."""
    selector = pod_spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = (pod_spec.get("affinity", {}).get("nodeAffinity", {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(term_matches(t, labels) for t in required["nodeSelectorTerms"])
