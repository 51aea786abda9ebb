"""The library behind every chapter: data, models, training, metrics, figures and learner checks."""
