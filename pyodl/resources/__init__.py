"""What on-device training costs: the resource estimator (before any build) and the bench that measures it."""
