"""Published numbers: [SF]^2M (Tong et al., AISTATS 2024), Table 2, which reruns the 2-D
benchmark of Tong et al. (TMLR 2024). Values as read from the PDF text (mean, std over 5 seeds);
None where the method does not apply (FM needs a Gaussian source; SB-CFM was not run)."""

TASKS = ("gaussian-8gaussians", "moons-8gaussians", "gaussian-moons", "gaussian-scurve")
METHODS = ("OT-CFM", "SB-CFM", "RF", "I-CFM", "FM")

W2 = {
    "OT-CFM": ((0.303, 0.043), (0.601, 0.027), (0.130, 0.016), (0.144, 0.028)),
    "SB-CFM": ((2.314, 2.112), None, (0.434, 0.594), (0.341, 0.468)),
    "RF": ((0.421, 0.071), (1.525, 0.330), (0.283, 0.045), (0.345, 0.079)),
    "I-CFM": ((0.373, 0.103), (1.557, 0.407), (0.178, 0.014), (0.242, 0.141)),
    "FM": ((0.343, 0.058), None, (0.209, 0.055), (0.198, 0.037)),
}
NPE = {
    "OT-CFM": ((0.031, 0.027), (0.015, 0.010), (0.083, 0.009), (0.027, 0.012)),
    "SB-CFM": ((1.000, 0.000), None, (0.995, 0.000), (0.745, 0.039)),
    "RF": ((0.044, 0.031), (0.203, 0.090), (0.130, 0.078), (0.099, 0.066)),
    "I-CFM": ((0.202, 0.055), (2.680, 0.292), (0.891, 0.120), (0.856, 0.031)),
    "FM": ((0.190, 0.054), None, (0.762, 0.099), (0.743, 0.116)),
}
