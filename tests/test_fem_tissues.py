"""Tissue presets: numbers, sources, conversions, and the materials they build."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest

from organsim.errors import MaterialError
from organsim.fem import tissues as T

REQUIRED = ["liver", "kidney", "brain", "myocardium", "fat", "skin", "vessel_wall", "tumour"]


def _materials_module():
    """The core's materials module, or a test-local stand-in recording the arguments
    (used only while fem/materials.py has not landed)."""
    try:
        return importlib.import_module("organsim.fem.materials"), False
    except ImportError:
        mod = types.ModuleType("organsim.fem.materials")

        def make(name):
            class M:
                def __init__(self, *args):
                    self.args = args
            M.__name__ = name
            return M

        for n in ["LinearElastic", "Corotational", "StVenantKirchhoff", "NeoHookean", "MooneyRivlin"]:
            setattr(mod, n, make(n))
        return mod, True


@pytest.fixture
def mats(monkeypatch):
    mod, stand_in = _materials_module()
    if stand_in:
        monkeypatch.setitem(sys.modules, "organsim.fem.materials", mod)
        import organsim.fem as fem_pkg
        monkeypatch.setattr(fem_pkg, "materials", mod, raising=False)
    return mod


def test_required_presets_present_with_sources():
    for name in REQUIRED:
        d = T.TISSUE_DATA[name]
        assert 900 <= d.density <= 1200, name
        assert 100 <= d.mu <= 1e6, name
        assert len(d.source) > 20 and len(d.notes) > 20, name


def test_numbers_match_literature_table():
    # /work/shared/TISSUES.md
    assert T.TISSUE_DATA["liver"].mu == 1800.0 and T.TISSUE_DATA["liver"].density == 1060.0
    assert T.TISSUE_DATA["kidney"].mu == 4900.0
    assert T.TISSUE_DATA["brain"].mu == 670.0
    assert T.TISSUE_DATA["fat"].mu == 530.0 and T.TISSUE_DATA["fat"].density == 950.0
    assert T.TISSUE_DATA["skin"].mu == 23000.0 and T.TISSUE_DATA["skin"].c10 == 11500.0
    assert T.TISSUE_DATA["vessel_wall"].mu == 210e3
    assert T.TISSUE_DATA["tumour"].mu == 23.4e3
    assert T.TISSUE_DATA["myocardium"].unverified
    # the isotropic equivalent of Holzapfel-Ogden, documented in the preset
    assert T.TISSUE_DATA["myocardium"].mu == pytest.approx(5689.6, rel=1e-3)


def test_conversions():
    assert T.young_modulus(1000.0, 0.45) == pytest.approx(2900.0)
    assert T.young_modulus(1000.0, 0.4999) == pytest.approx(3000.0, rel=1e-3)
    k = T.bulk_modulus(1000.0, 0.45)
    E = T.young_modulus(1000.0, 0.45)
    assert k == pytest.approx(E / (3 * (1 - 2 * 0.45)))


@pytest.mark.parametrize("model", T.MODELS)
def test_tissue_builds_every_model(mats, model):
    for name in REQUIRED:
        p = T.tissue(name, model=model, nu=0.45)
        assert isinstance(p, T.TissuePreset)
        assert p.density == T.TISSUE_DATA[name].density
        assert p.source == T.TISSUE_DATA[name].source
        assert model in p.notes
        expected = {"neo_hookean": "NeoHookean", "corotational": "Corotational", "linear": "LinearElastic",
                    "stvk": "StVenantKirchhoff", "mooney_rivlin": "MooneyRivlin"}[model]
        assert type(p.material).__name__ == expected
        if model == "mooney_rivlin":
            assert 2 * (p.params["c10"] + p.params["c01"]) == pytest.approx(T.TISSUE_DATA[name].mu)
        else:
            assert p.params["E"] == pytest.approx(2 * T.TISSUE_DATA[name].mu * 1.45)


def test_small_strain_shear_modulus_of_built_material(mats):
    """Every model built from a preset has the preset's shear modulus at small strain."""
    if not hasattr(mats.NeoHookean(1.0, 0.3), "pk1"):
        pytest.skip("fem.materials has not landed: only the stand-in is available")
    mu = T.TISSUE_DATA["liver"].mu
    g = 1e-6
    F = np.eye(3)[None].copy()
    F[0, 0, 1] = g  # simple shear
    for model in T.MODELS:
        m = T.tissue("liver", model=model).material
        P = m.pk1(F)
        assert P[0, 0, 1] / g == pytest.approx(mu, rel=1e-4), model


def test_mapping_and_aliases(mats):
    assert set(REQUIRED) <= set(T.TISSUES)
    assert T.TISSUES["liver"].name == "liver"
    assert T.tissue("vessel").name == "vessel_wall"
    assert T.tissue("tumor").name == "tumour"


def test_bad_input():
    with pytest.raises(MaterialError, match="unknown tissue"):
        T.tissue("spleenish")
    with pytest.raises(MaterialError, match="unknown material model"):
        T.tissue("liver", model="ogden")
    with pytest.raises(MaterialError, match="Poisson"):
        T.tissue("liver", nu=0.5)
