import torch

from benchmarks import losses as B


def test_the_psl_kernel_comparison_compares_two_forms_of_one_loss():
    kernel, grads = B.KERNELS["psl"], []
    scores, relevance = kernel.inputs()
    assert relevance.shape[0] == 64 and int((relevance[:, :1000] > 0).sum()) == 0
    values = []
    for fn in kernel.forms.values():
        scores.grad = None
        loss = fn(scores, relevance)
        loss.backward()
        values.append(float(loss))
        grads.append(scores.grad.clone())
    assert values[0] > 0 and abs(values[0] - values[1]) < 1e-5 * values[0]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)
    assert "PSL" in kernel.title


def test_each_kernel_comparison_writes_its_own_section_around_its_table():
    for name, kernel in B.KERNELS.items():
        section = B.kernel_section(name, "| the table |", repeats=3)
        assert section.startswith(f"## {kernel.heading}\n") and section.endswith("\n\n| the table |")
        assert f"--kernel {name} --repeats 3" in section and kernel.text in section
    assert len({k.heading for k in B.KERNELS.values()}) == len(B.KERNELS)


def test_the_psl_tanh_comparison_is_the_general_path_against_the_closed_form_on_a_heavy_batch(monkeypatch):
    from itemrec.ranking import ranks

    kernel = B.KERNELS["psl_tanh"]
    scores, relevance = kernel.inputs()
    counts = (relevance > 0).sum(1)
    assert relevance.shape == (64, 2024) and int(counts.max()) >= 300 and 10 <= float(counts.median()) <= 20
    chunks = []
    checkpoint = ranks.checkpoint
    monkeypatch.setattr(ranks, "checkpoint", lambda fn, *a, **k: chunks.append(len(a[0])) or checkpoint(fn, *a, **k))
    out = []
    for fn in kernel.forms.values():
        scores.grad = None
        loss = fn(scores, relevance)
        loss.backward()
        out.append((float(loss), scores.grad.clone()))
    assert len(chunks) >= 2  # before: the padded size over 2^25, checkpointed chunks; now: one call
    assert abs(out[0][0] - out[1][0]) < 1e-5 * out[0][0]
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-4, atol=1e-7)
