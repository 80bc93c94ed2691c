"""Predictors: the untiled reference path now; batching, TTA and scales wrap it later."""
