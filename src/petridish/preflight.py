"""Everything checked before the run folder exists that needs neither sampling nor the network
(`petridish validate` runs exactly this): models available here, never judging with a subject,
intervention tables against the subjects' shapes (read from their configs, not their weights).
A layer out of range or a direction of another width should cost a second, not a training."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from petridish.config import Experiment, locate
from petridish.errors import PetridishError
from petridish.models.http import key_variable
from petridish.models.loader import check_available
from petridish.models.refs import parse_model_ref
from petridish.models.subject import Subject, model_fingerprint, served_backend


@dataclass(frozen=True)
class Shape:
    layers: int
    width: int


def subject_shape(exp: Experiment, subject: str, base_dir: Path) -> Shape | None:
    """Depth and width of a subject (an organism has its root model's); None if not local."""
    from transformers import AutoConfig

    from petridish.models.bundled import converted_path

    root = subject
    while root not in exp.subjects:
        root = next(t.subject for t in exp.train if t.name == root)
    ref = exp.subject_ref(root, base_dir)
    if not ref.is_local or ref.kind == "hub":
        return None
    folder = converted_path(ref.name) if ref.kind == "bundled" else Path(ref.name)
    cfg = AutoConfig.from_pretrained(folder)
    return Shape(int(cfg.num_hidden_layers), int(cfg.hidden_size))


def check_interventions(exp: Experiment, base_dir: Path) -> None:
    """Layers in range; every direction as wide (and, for all-layer ablations, as deep) as the
    model it is applied to; a contrast's two subjects of one shape."""
    shapes: dict[str, Shape | None] = {}

    def shape(name: str) -> Shape | None:
        if name not in shapes:
            shapes[name] = subject_shape(exp, name, base_dir)
        return shapes[name]

    sources: dict[str, str] = {}
    for i, d in enumerate(exp.direction):
        for key in ("contrast", "fallback_contrast"):
            pair = getattr(d, key)
            if pair and None not in (sa := shape(pair[0]), sb := shape(pair[1])) and sa != sb:
                raise PetridishError(f"{pair[0]!r} ({_say(sa)}) and {pair[1]!r} ({_say(sb)}) "
                                     "differ in shape; a contrast needs one model shape",
                                     field=f"direction[{i}].{key}")
        sources[d.name] = d.contrast[0] if d.contrast else d.subject
        own = shape(sources[d.name])
        for layer in d.per_token_layers or []:
            if own is not None and not 0 <= layer < own.layers:
                raise PetridishError(f"layer {layer} is out of range: {sources[d.name]!r} has "
                                     f"layers 0-{own.layers - 1}",
                                     field=f"direction[{i}].per_token_layers")
    for table, items in (("steer", exp.steer), ("ablate", exp.ablate)):
        for i, c in enumerate(items):
            target, source = shape(c.subject), shape(sources[c.direction])
            if target is None:
                continue
            single = getattr(c, "layer", None)
            layers = getattr(c, "layers", None) or ([single] if single is not None else [])
            for layer in layers:
                if not 0 <= layer < target.layers:
                    raise PetridishError(f"layer {layer} is out of range: {c.subject!r} has "
                                         f"layers 0-{target.layers - 1}",
                                         field=f"{table}[{i}].layers")
            if source is None:
                continue
            if source.width != target.width:
                raise PetridishError(f"direction {c.direction!r} has width {source.width} "
                                     f"(from {sources[c.direction]!r}) but {c.subject!r} has "
                                     f"width {target.width}", field=f"{table}[{i}].direction")
            every_layer = table == "ablate" and set(getattr(c, "modes", [])) - {"none"}
            if every_layer and source.layers != target.layers:
                raise PetridishError(f"direction {c.direction!r} has {source.layers} layers but "
                                     f"{c.subject!r} has {target.layers}; an all-layer ablation "
                                     "needs both", field=f"{table}[{i}].direction")


def preflight(exp: Experiment, path: Path) -> None:
    """Every check that needs neither sampling nor the network, in the order `run` meets them;
    a failure names `FILE:LINE: table[i].field` of the experiment (or the data file's line)."""
    try:
        _preflight(exp, path.parent)
    except PetridishError as e:
        raise locate(e, path) from e


def _preflight(exp: Experiment, base_dir: Path) -> None:
    for name in exp.subjects:
        ref = exp.subject_ref(name, base_dir)
        if ref.is_local:
            check_available(ref)
        else:
            env = key_variable(ref, exp.subject_table(name).endpoint())
            if env and not os.environ.get(env):
                raise PetridishError(f"environment variable {env} is not set; subject {name!r} "
                                     f"({ref.text}) reads its API key from it",
                                     field=f"subjects.{name}.api_key_env")
    check_local_only(exp, base_dir)
    check_train(exp, base_dir)
    check_judge_is_no_subject(exp, base_dir)
    check_interventions(exp, base_dir)
    if os.environ.get("PETRIDISH_JUDGE_PRECISION"):  # a wrong one, before anything is sampled
        from petridish.judges.encoder import precision

        precision()
    if needs_judge(exp):  # an offline judge's encoder, installed?
        from petridish.judges.offline import LARGE_FOLDER, folder_encoder

        folder = (LARGE_FOLDER if exp.judge.backend == "offline-large"
                  else exp.judge.folder(base_dir))
        if folder is not None:
            folder_encoder(folder)


def check_train(exp: Experiment, base_dir: Path) -> None:
    """Every line of every dataset, and the adapters' layers against the model's depth."""
    from petridish.data.formats import load_dataset, resolve_dataset_path
    from petridish.train.layout import resolve_layers

    for i, t in enumerate(exp.train):
        load_dataset(resolve_dataset_path(t.dataset, base_dir))  # errors name file:line:field
        shape = subject_shape(exp, t.subject, base_dir)
        if t.method == "lora" and shape is not None:
            try:
                resolve_layers(t.layout, t.layers, shape.layers)
            except PetridishError as e:
                key = "layers" if t.layers is not None else "layout"
                raise PetridishError(e.message, field=f"train[{i}].{key}") from e


def check_local_only(exp: Experiment, base_dir: Path) -> None:
    """Activations, interventions and training need the weights in this process."""
    hint = ("served subjects are assayed only; to assay a steered or ablated model over HTTP, "
            "serve it with the intervention and declare it as a served subject")
    for i, d in enumerate(exp.direction):
        for key in ("subject", "contrast", "fallback_contrast"):
            value = getattr(d, key)
            for who in [value] if isinstance(value, str) else value or []:
                if exp.is_served(who, base_dir):
                    raise PetridishError(f"{who!r} is a served model: a direction needs its "
                                         f"activations; {hint}", field=f"direction[{i}].{key}")
    for table, items in (("steer", exp.steer), ("ablate", exp.ablate)):
        for i, c in enumerate(items):
            if exp.is_served(c.subject, base_dir):
                raise PetridishError(f"{c.subject!r} is a served model and cannot be "
                                     f"intervened on here; {hint}", field=f"{table}[{i}].subject")


def probe_endpoints(exp_path: Path, subjects: dict[str, Subject],
                    judge: object | None) -> dict[str, dict[str, object]]:
    """One cheap request to every served subject (and the served judge), before the run
    folder exists: an endpoint that does not answer costs a second, not a run. Returns what
    each subject's probe found (e.g. whether it honours `seed`)."""
    try:
        return _probe(subjects, judge)
    except PetridishError as e:
        raise locate(e, exp_path) from e


def _probe(subjects: dict[str, Subject], judge: object | None) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for name, subject in subjects.items():
        if not subject.ref.is_local:
            found[name] = served_backend(subject).probe()
    probe = getattr(judge, "probe", None)
    if callable(probe):
        probe()
    return found


def needs_judge(exp: Experiment) -> bool:
    from petridish.assays.registry import get_assay

    return bool(exp.steer or exp.ablate or any(get_assay(a.kind).judged for a in exp.assay))


def check_judge_is_no_subject(exp: Experiment, base_dir: Path) -> None:
    """Never judge with the model under test."""
    spec = exp.judge.backend
    if spec.startswith("hf:"):
        judge_ref = parse_model_ref(spec.removeprefix("hf:"), base_dir=base_dir)
        for name in exp.subjects:
            ref = exp.subject_ref(name, base_dir)
            if ref.is_local and model_fingerprint(ref) == model_fingerprint(judge_ref):
                raise PetridishError(f"the judge {spec} is the subject {name!r}: never judge "
                                     "with the model under test", field="judge.backend")
    elif spec in [exp.subject_table(n).ref for n in exp.subjects]:
        raise PetridishError(f"the judge {spec} is a subject: never judge with the model under "
                             "test", field="judge.backend")


def _say(s: Shape | None) -> str:
    return "unknown shape" if s is None else f"{s.layers} layers × {s.width}"
