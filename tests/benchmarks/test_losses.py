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
