"""napari plugin (npe2, manifest ``napari.yaml``; install ``slicewise[napari]``).

- reader (:mod:`.reader`): slicewise OME-Zarr predictions (one image layer per channel, named
  after the classes, with the level's scale; the argmax labels as a labels layer) and
  audit / study / demo report folders (their PNG figures as RGB image layers);
- widgets (:mod:`.widgets`): *Predict* runs ``slicewise.predict`` on an image layer in a thread
  worker; *Attribution audit* shows the slice-share bars, MA and attribution maps;
- sample data (:mod:`.sample_data`): the seeded EM phantom with its ground truth.

This package is the plugin's one entry point: npe2 imports the submodules named in napari.yaml, and
Python imports this ``__init__`` first, which installs :func:`.triton_guard.install_triton_guard` before
any plugin code can import torch (triton next to Mesa's libLLVM crashes napari; see :mod:`.triton_guard`).
"""

from slicewise.napari.triton_guard import install_triton_guard

install_triton_guard()

__all__: list[str] = []  # npe2 loads the submodules named in napari.yaml; nothing is re-exported
