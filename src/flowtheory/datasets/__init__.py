"""Data sets: the toy generators (:mod:`.toys`), MNIST (:mod:`.mnist`), the spec checks
(:mod:`.spec`) and the dispatcher that builds a configured data set (:mod:`.build`)."""
