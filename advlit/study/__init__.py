"""The black-box study: cached surrogates and adversarial sets, transfer evaluation."""
