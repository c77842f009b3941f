"""Soft-tissue presets: density and stiffness from the literature, each with its source.

Every preset stores the measured numbers (a small-strain shear modulus ``mu``
in Pa and a density in kg/m^3) right next to the citation they come from, and
builds a material of the requested constitutive model on demand.

How uncertain are these numbers?
--------------------------------
Very. Published soft-tissue stiffness varies several-fold between subjects,
loading rates and methods: dynamic MR elastography (MRE) reads higher than
quasi-static indentation, and ex-vivo porcine tissue differs from in-vivo
human tissue. Treat every preset as a plausible starting point within a factor
of about two, not as patient data. Each preset's ``notes`` gives the spread
the source reports; entries marked *unverified* were not checked against the
original paper.

Conversions
-----------
All presets are given by their small-strain shear modulus ``mu`` (the
quantity the cited measurements report, or derived from it as documented per
preset). For a chosen Poisson ratio ``nu`` (default 0.45, the value common in
surgical simulation):

* Young's modulus ``E = 2 mu (1 + nu)`` (so ``E ≈ 3 mu`` as ``nu -> 0.5``;
  with ``nu = 0.45``, ``E = 2.9 mu``). The shear modulus, not ``E``, is held
  at the measured value.
* bulk modulus ``kappa = 2 mu (1 + nu) / (3 (1 - 2 nu))``.
* Mooney–Rivlin: ``mu = 2 (c10 + c01)``. None of the sources below separates
  ``c10`` from ``c01`` for these tissues, so ``c01 = 0`` unless a preset gives
  both (then the Mooney–Rivlin model has the neo-Hookean small-strain
  response, as it must, with the same ``mu``).

Examples
--------
>>> from organsim.fem.tissues import TISSUE_DATA, young_modulus
>>> TISSUE_DATA["liver"].mu, TISSUE_DATA["liver"].density
(1800.0, 1060.0)
>>> round(young_modulus(TISSUE_DATA["liver"].mu, 0.45))
5220
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import MaterialError

__all__ = ["TissuePreset", "TissueData", "TISSUE_DATA", "TISSUES", "MODELS", "tissue",
           "young_modulus", "bulk_modulus"]

#: Constitutive models a preset can be built as.
MODELS = ("neo_hookean", "corotational", "linear", "stvk", "mooney_rivlin")

#: Source of the densities (all presets unless stated otherwise).
DENSITY_SOURCE = ("Mech Mater 44:174-188 (2012), table 3 (PMC3233242); "
                  "Kaye & Laby tables agree within 1-2 %")


@dataclass(frozen=True)
class TissueData:
    """The literature numbers behind one preset (before choosing a model).

    Parameters
    ----------
    name : str
        Preset name, e.g. ``"liver"``.
    mu : float
        Small-strain shear modulus (Pa).
    mu_sd : float or None
        Reported standard deviation of ``mu`` (Pa), where the source gives one.
    density : float
        Mass density (kg/m^3).
    source : str
        Citation of the stiffness (and of the density where it differs from
        :data:`DENSITY_SOURCE`).
    notes : str
        How the number was derived and how uncertain it is.
    unverified : bool
        True where the value was not checked against the original paper.
    c10, c01 : float or None
        Mooney–Rivlin constants (Pa) where the source gives them.
    """

    name: str
    mu: float
    mu_sd: float | None
    density: float
    source: str
    notes: str
    unverified: bool = False
    c10: float | None = None
    c01: float | None = None


# --------------------------------------------------------------------------- the numbers
# Each entry: measured shear modulus (Pa) and density (kg/m^3) with the source on the same lines.
TISSUE_DATA: dict[str, TissueData] = {
    "liver": TissueData(
        name="liver",
        mu=1.8e3, mu_sd=0.4e3,            # PMC6925591 table 1: healthy liver mu = 1.8 +/- 0.4 kPa
        density=1060.0,                   # PMC3233242 table 3
        source=("Phys Med Biol 64(22):225001 (2019), table 1 (PMC6925591), citing Bamber & Hill 1981 "
                "and Palmeri 2008; density " + DENSITY_SOURCE),
        notes=("Healthy human liver, shear modulus 1.8 +/- 0.4 kPa (about +/- 22 %); E = 2 mu (1 + nu) "
               "= 5.2 kPa at nu = 0.45. Elastography values; quasi-static values can be lower. "
               "Ultimate tensile stress 0.27 MPa at true strain 0.38 (same table)."),
    ),
    "liver_diseased": TissueData(
        name="liver_diseased",
        mu=19.8e3, mu_sd=None,            # PMC6925591 table 1: diseased (fibrotic) liver ~ 19.8 kPa
        density=1060.0,                   # taken equal to healthy liver (PMC3233242 table 3)
        source="Phys Med Biol 64(22):225001 (2019), table 1 (PMC6925591); density " + DENSITY_SOURCE,
        notes=("Diseased (fibrotic/cirrhotic) liver, about 19.8 kPa, read as a shear modulus like the "
               "healthy value in the same table; no spread given: uncertain to a factor of about two."),
    ),
    "tumour": TissueData(
        name="tumour",
        mu=23.4e3, mu_sd=None,            # PMC6925591 table 1: hepatocellular carcinoma ~ 23.4 kPa
        density=1060.0,                   # no tumour density in the source: liver's value is used
        source="Phys Med Biol 64(22):225001 (2019), table 1 (PMC6925591); density " + DENSITY_SOURCE,
        notes=("Hepatocellular carcinoma, about 23.4 kPa, read as a shear modulus like the healthy "
               "liver value in the same table; about 13 times stiffer than healthy liver. No spread "
               "given; tumours vary widely (uncertain to a factor of two or more). Density assumed "
               "equal to liver."),
    ),
    "kidney": TissueData(
        name="kidney",
        mu=4.9e3, mu_sd=0.5e3,            # JMRI 34(4):880-886 (2011): MRE mu = 4.9 +/- 0.5 kPa at 45 Hz
        density=1050.0,                   # PMC3233242 table 3
        source=("J Magn Reson Imaging 34(4):880-886 (2011), PMID 21769970 (MR elastography); "
                "density " + DENSITY_SOURCE),
        notes=("Human kidney by MR elastography: mu = 4.9 +/- 0.5 kPa at 45 Hz, 9.4 +/- 0.8 kPa at "
               "76 Hz. The 45 Hz value is used (closest to quasi-static); dynamic MRE reads higher than "
               "quasi-static loading, so the static stiffness may be lower still."),
    ),
    "brain": TissueData(
        name="brain",
        mu=670.0, mu_sd=None,             # PMC9748497: in vivo one-term Ogden mu = 670 Pa, alpha = -19
        density=1040.0,                   # PMC3233242 table 3
        source=("PMC9748497 (in vivo positional brain shift model, Ogden mu = 670 Pa, alpha = -19, "
                "kappa = 148 kPa); J Funct Biomater 3(4):839-863 (2012) (porcine indentation: grey "
                "matter ~0.74 kPa, white ~1.03 kPa); density " + DENSITY_SOURCE),
        notes=("Ogden initial shear modulus 670 Pa used as the neo-Hookean mu; the Ogden exponent "
               "alpha = -19 (strong tension/compression asymmetry) is NOT represented by the isotropic "
               "models here. The source's kappa = 148 kPa means nu ~ 0.498; pass nu=0.49 for a closer "
               "volumetric response. Grey/white matter differ by ~40 %."),
    ),
    "myocardium": TissueData(
        name="myocardium",
        # Holzapfel-Ogden (2009) parameters (unverified): a = 0.059 kPa, b = 8.023, a_f = 18.472 kPa,
        # b_f = 16.026, a_s = 2.481 kPa, b_s = 11.120, a_fs = 0.216 kPa, b_fs = 11.436.
        # Isotropic equivalent: mu_eq = a + 4 (a_f + a_s) / 15 + a_fs / 5 = 5.69 kPa (see notes).
        mu=0.059e3 + 4.0 * (18.472e3 + 2.481e3) / 15.0 + 0.216e3 / 5.0, mu_sd=None,
        density=1060.0,                   # PMC3233242 table 3
        source=("Holzapfel & Ogden, Phil Trans R Soc A 367:3445-3475 (2009) (parameters unverified); "
                "in vivo estimation in Gao et al., J Eng Math 95:231-248 (2015); density "
                + DENSITY_SOURCE),
        notes=("ISOTROPIC EQUIVALENT of the orthotropic Holzapfel-Ogden law, which organsim does not "
               "implement: the shear modulus of the orientation average of the HO elasticity tensor at "
               "F = I (fibre/sheet terms 4 a_f/15 and 4 a_s/15, fibre-sheet term a_fs/5, matrix a), "
               "mu_eq = 5.69 kPa. It loses the anisotropy (along-fibre tension is ~4x stiffer) and the "
               "exponential strain stiffening; passive myocardium only, no active contraction. The HO "
               "parameter values are unverified against the paper."),
        unverified=True,
    ),
    "skin": TissueData(
        name="skin",
        mu=2.0 * 11.5e3, mu_sd=None,      # Hendriks et al.: Mooney C10 ~ 11.5 kPa, E = 6 C10 ~ 69 kPa
        density=1090.0,                   # PMC3233242 table 3
        source=("Hendriks et al., in vivo forearm skin (Mooney form, C10 ~ 11.5 kPa, E = 6 C10 ~ 69 kPa); "
                "'In vivo characterization of the mechanical properties of human skin derived from MRI "
                "and indentation techniques' (layered neo-Hookean: dermis C10 = 1.11 MPa, hypodermis "
                "0.42 kPa); density " + DENSITY_SOURCE),
        notes=("Whole-skin lumped value mu = 2 C10 = 23 kPa. Skin is layered and anisotropic: dermis "
               "alone is ~100x stiffer and hypodermis ~50x softer than this lump; values vary with "
               "site, age and hydration (factor of several)."),
        c10=11.5e3, c01=0.0,
    ),
    "fat": TissueData(
        name="fat",
        mu=0.53e3, mu_sd=0.31e3,          # Sims et al. 2010: neo-Hookean mu = 0.53 +/- 0.31 kPa (porcine)
        density=950.0,                    # PMC3233242 table 3
        source=("Sims et al., Biomech Model Mechanobiol 9:703-711 (2010) (porcine subdermal fat); human "
                "in vivo |G*| ~ 752 Pa; density " + DENSITY_SOURCE),
        notes=("Porcine subdermal adipose tissue, mu = 0.53 +/- 0.31 kPa (+/- 58 %: very uncertain). "
               "Strongly viscoelastic (Prony alpha = 0.39, tau = 700 s), which these elastic models "
               "ignore."),
    ),
    "vessel_wall": TissueData(
        name="vessel_wall",
        mu=210e3, mu_sd=47e3,             # PMC6925591 table 1: hepatic artery mu = 210 +/- 47 kPa
        density=1050.0,                   # PMC3233242 table 3
        source=("Phys Med Biol 64(22):225001 (2019), table 1 (PMC6925591) (hepatic artery); the arterial "
                "GOH law of Gasser, Ogden & Holzapfel, J R Soc Interface 3:15-35 (2006) (c = 7.64, "
                "k1 = 996.6, k2 = 524.6, kappa = 0.226, gamma = 49.98 deg; units unverified) is not "
                "implemented; density " + DENSITY_SOURCE),
        notes=("Hepatic artery wall, isotropic mu = 210 +/- 47 kPa (+/- 22 %). Real arterial walls are "
               "anisotropic with collagen fibres that stiffen sharply beyond ~10 % strain; the GOH "
               "parameters (unverified) are listed in the source for reference only."),
    ),
}


def young_modulus(mu: float, nu: float) -> float:
    """Young's modulus ``E = 2 mu (1 + nu)`` (Pa) from a shear modulus (Pa)."""
    return 2.0 * mu * (1.0 + nu)


def bulk_modulus(mu: float, nu: float) -> float:
    """Bulk modulus ``kappa = 2 mu (1 + nu) / (3 (1 - 2 nu))`` (Pa) from a shear modulus (Pa)."""
    return 2.0 * mu * (1.0 + nu) / (3.0 * (1.0 - 2.0 * nu))


@dataclass(frozen=True)
class TissuePreset:
    """A tissue ready to simulate: density, a material, and where the numbers come from.

    Parameters
    ----------
    name : str
        Preset name.
    density : float
        Mass density (kg/m^3).
    material : Material
        An instance from :mod:`organsim.fem.materials`.
    source : str
        Citation of the numbers.
    notes : str
        How the numbers were derived, the model used, and how uncertain they are.
    model : str
        The constitutive model name (one of :data:`MODELS`).
    params : dict
        The material parameters used (Pa, or dimensionless for ``nu``).
    """

    name: str
    density: float
    material: Any
    source: str
    notes: str
    model: str = "neo_hookean"
    params: dict = field(default_factory=dict)


def _check_nu(nu: float) -> float:
    nu = float(nu)
    if not (-1.0 < nu < 0.5):
        raise MaterialError(f"Poisson ratio nu = {nu} is outside (-1, 0.5); soft tissue is nearly "
                            "incompressible: use 0.45 to 0.49")
    return nu


def tissue(name: str, *, model: str = "neo_hookean", nu: float = 0.45) -> TissuePreset:
    """Build a tissue preset as a material of the chosen model.

    Parameters
    ----------
    name : str
        One of ``TISSUE_DATA`` (liver, liver_diseased, tumour, kidney, brain, myocardium,
        skin, fat, vessel_wall); ``"vessel"`` is accepted for ``"vessel_wall"``.
    model : str
        ``"neo_hookean"`` (default), ``"corotational"``, ``"linear"``, ``"stvk"`` or
        ``"mooney_rivlin"``.
    nu : float
        Poisson ratio used to derive ``E`` and the bulk modulus from the measured
        shear modulus (see the module docstring).

    Returns
    -------
    TissuePreset
        With ``material`` an instance from :mod:`organsim.fem.materials`.

    Raises
    ------
    MaterialError
        Unknown tissue or model, or a Poisson ratio outside (-1, 0.5).

    Examples
    --------
    >>> p = tissue("kidney", model="corotational", nu=0.45)
    >>> round(p.params["E"])
    14210
    """
    key = str(name).lower().replace(" ", "_").replace("-", "_")
    key = {"vessel": "vessel_wall", "tumor": "tumour", "heart": "myocardium"}.get(key, key)
    if key not in TISSUE_DATA:
        raise MaterialError(f"unknown tissue {name!r}; expected one of {', '.join(TISSUE_DATA)}")
    if model not in MODELS:
        raise MaterialError(f"unknown material model {model!r}; expected one of {', '.join(MODELS)}")
    nu = _check_nu(nu)
    d = TISSUE_DATA[key]
    from . import materials as mats  # built lazily: fem.materials is owned by the solver core

    E = young_modulus(d.mu, nu)
    if model == "mooney_rivlin":
        if d.c10 is not None:
            c10, c01 = float(d.c10), float(d.c01 or 0.0)
            conv = "c10, c01 from the source"
        else:
            c10, c01 = d.mu / 2.0, 0.0
            conv = "c10 = mu/2, c01 = 0 (the source does not separate them)"
        kappa = bulk_modulus(2.0 * (c10 + c01), nu)
        material = mats.MooneyRivlin(c10, c01, kappa)
        params = {"c10": c10, "c01": c01, "kappa": kappa, "nu": nu}
        conv += f"; kappa from nu = {nu}"
    else:
        cls = {"neo_hookean": mats.NeoHookean, "corotational": mats.Corotational,
               "linear": mats.LinearElastic, "stvk": mats.StVenantKirchhoff}[model]
        material = cls(E, nu)
        params = {"E": E, "nu": nu, "mu": d.mu}
        conv = f"E = 2 mu (1 + nu) with mu = {d.mu:.4g} Pa, nu = {nu}"
    notes = f"{d.notes} Model {model}: {conv}."
    if d.unverified:
        notes += " UNVERIFIED parameters."
    return TissuePreset(name=key, density=d.density, material=material, source=d.source,
                        notes=notes, model=model, params=params)


class _Presets(Mapping):
    """``name -> TissuePreset`` (neo-Hookean, nu = 0.45), built on first access."""

    def __init__(self) -> None:
        self._cache: dict[str, TissuePreset] = {}

    def __getitem__(self, name: str) -> TissuePreset:
        if name not in TISSUE_DATA:
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = tissue(name)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(TISSUE_DATA)

    def __len__(self) -> int:
        return len(TISSUE_DATA)

    def __repr__(self) -> str:
        return f"TISSUES({', '.join(TISSUE_DATA)})"


#: Default presets (neo-Hookean, nu = 0.45) by name; materials are built on first access.
TISSUES: Mapping[str, TissuePreset] = _Presets()
