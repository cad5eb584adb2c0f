"""Render backends, behind one contract. Pure Python: nothing in this package imports Django.

- `base`: the contract (`Provider`), its dataclasses, `BackendConfig`, `ProviderError` and the
  retry classes.
- `registry`: which provider speaks which backend kind (`register`, `provider_for`).
- `checks`: what one check of a render means (finished, failed, gone, forgotten, too late).
- `comfyui`, `runpod`: the providers; `comfyui_follow`: the one socket loop per ComfyUI backend.
- `url_policy`: where the studio may connect.

Adding a backend kind: copy `runpod.py` (a backend that is polled) to `<kind>.py`; implement
every method and attribute of `base.Provider`, raising only `ProviderError` with the codes its
docstrings give, and a `from_config(BackendConfig)` factory; add one line to `registry.py`:
`register(<kind>.KIND, <kind>.from_config)` (`api_key=True` when it sends the backend's key).
mypy checks the class against the contract at that line; add it to
`tests/unit/test_provider_contract.py` for the same check at run time. The render watcher then
follows its renders with `checks` on the poll interval (its PollWatch), and attempts, dispatch
and the reconciler use it through the contract. Outside this package the kind still needs its
`generation.models.BackendKind` choice (a migration) and, where it differs from "any backend",
its URL rule in `url_policy.BY_KIND`. Test it against a fake server that speaks the real protocol
(tests/conformance/runpod/ shows how).
"""
