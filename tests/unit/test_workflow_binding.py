import json

import pytest

from generation.workflow_binding import Target, TemplateError, bind_workflow, load_template_file


def _write(tmp_path, doc, name="t.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["3", 0]}},
}
BINDINGS = {
    "prompt": {"node": "6", "input": "text"},
    "seed": [{"node": "3", "input": "seed"}],
    "filename_prefix": {"node": "9", "input": "filename_prefix"},
}


def test_the_shipped_template_loads(settings):
    spec = load_template_file(settings.WORKFLOWS_DIR / "storyboard-txt2img.json")
    assert spec.slug == "storyboard-txt2img"
    assert spec.bindings["prompt"] == [Target("6", "text")]
    assert len(spec.sha256) == 64


def test_binding_writes_values_and_leaves_the_template_untouched():
    bindings = {"prompt": [Target("6", "text")], "seed": [Target("3", "seed")], "negative_prompt": []}
    bound = bind_workflow(GRAPH, bindings, {"prompt": "a red door", "seed": 42, "negative_prompt": None})
    assert bound["6"]["inputs"]["text"] == "a red door"
    assert bound["3"]["inputs"]["seed"] == 42
    assert bound["6"]["inputs"]["clip"] == ["4", 1]
    assert GRAPH["6"]["inputs"]["text"] == ""


def test_a_binding_to_a_missing_node_names_the_file_binding_and_node(tmp_path):
    path = _write(
        tmp_path, {"workflow": GRAPH, "bindings": {**BINDINGS, "seed": {"node": "77", "input": "seed"}}}
    )
    with pytest.raises(TemplateError, match=r"t.json: binding 'seed' points at node '77'"):
        load_template_file(path)


def test_a_binding_to_a_link_input_is_refused(tmp_path):
    path = _write(
        tmp_path, {"workflow": GRAPH, "bindings": {**BINDINGS, "seed": {"node": "3", "input": "model"}}}
    )
    with pytest.raises(TemplateError, match="is a link to another node"):
        load_template_file(path)


def test_a_template_without_a_filename_prefix_binding_is_refused(tmp_path):
    bindings = {k: v for k, v in BINDINGS.items() if k != "filename_prefix"}
    with pytest.raises(TemplateError, match="must include filename_prefix"):
        load_template_file(_write(tmp_path, {"workflow": GRAPH, "bindings": bindings}))


def test_a_ui_format_workflow_is_refused_with_a_hint(tmp_path):
    path = _write(tmp_path, {"workflow": {"nodes": [], "links": []}, "bindings": BINDINGS})
    with pytest.raises(TemplateError, match="export the workflow in API format"):
        load_template_file(path)


def test_broken_json_reports_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"workflow": {,}')
    with pytest.raises(TemplateError, match=r"bad.json: not valid JSON \(line 1, column 15"):
        load_template_file(path)
