"""The samplers' names, in a module without torch, so the command line can offer them as choices
without paying torch's import at start-up (`kinema.diffusion.sampling` implements them)."""

SAMPLERS = ("euler", "heun", "multistep", "stochastic")
