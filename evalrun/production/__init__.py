"""From production back to the golden set: traces as one shape (:mod:`.traces`), redaction that
fails closed (:mod:`.redact`) and the harvest into reviewable golden items (:mod:`.harvest`)."""
