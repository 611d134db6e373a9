"""Import MACE and e3nn quietly, in the order they need (imported for its side effect).

mace prints a notice about optional CUDA kernels on import and e3nn warns about torch.load
defaults; neither concerns users, and CLI output must stay clean. A module of its own, outside
``specml.models``, so that modules which ``specml.models`` itself imports (the MD fast path)
can import MACE without importing that package half-initialised.
"""

import contextlib
import io
import warnings

with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import mace.tools.cg  # noqa: F401  -- before e3nn: mace makes e3nn's constants loadable with torch>=2.6

    # isort: split
    import e3nn.o3  # noqa: F401
# Building MACE blocks makes TorchScript emit a type-annotation warning that is not ours to fix.
warnings.filterwarnings("ignore", message="The TorchScript type system")
