"""napari plugin (npe2, manifest ``napari.yaml``; install ``slicewise[napari]``).

- reader (:mod:`.reader`): slicewise OME-Zarr predictions (one image layer per channel, named
  after the classes, with the level's scale; the argmax labels as a labels layer) and
  audit / study / demo report folders (their PNG figures as RGB image layers);
- widgets (:mod:`.widgets`): *Predict* runs ``slicewise.predict`` on an image layer in a thread
  worker; *Attribution audit* shows the slice-share bars, MA and attribution maps;
- sample data (:mod:`.sample_data`): the seeded EM phantom with its ground truth.
"""

__all__: list[str] = []  # npe2 loads the submodules named in napari.yaml; nothing is re-exported
