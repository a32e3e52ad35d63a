"""The OCPP-J decoder, one concern per module (contract: :mod:`..decode_ocpp`).

Data flows top to bottom:

* :mod:`.decoder`: :class:`OcppDecoder`, routing a frame through the rest;
* :mod:`.framing`: what an OCPP-J frame must look like; the frame being decoded;
* :mod:`.state` and :mod:`.correlation`: CALLs matched with their answers;
* :mod:`.schemas`, :mod:`.validation` and :mod:`.quirks`: the official JSON
  schemas, bad items cut out, accepted deviations repaired and counted;
* :mod:`.v16`, :mod:`.v201` and :mod:`.problems`: each version's actions as events;
* :mod:`.context`: limits and the timestamp and connector checks they share;
* :mod:`.meter` and :mod:`.units`: sampledValues into meter rows, in chargewatch's units.
"""
