//! Containing the shadow call: faults, hangs and exits of the new build
//! become verdicts. (In progress.)
