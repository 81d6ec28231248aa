// Small helpers around the generated API: plain-language error text, logging, and
// readings shown back to a person. Pure Kotlin/JVM.
package health.carry

import health.carry.ffi.CarryException
import health.carry.ffi.GlucoseUnit
import health.carry.ffi.LogLevel
import health.carry.ffi.Logger
import health.carry.ffi.Reading
import health.carry.ffi.TemperatureUnit
import health.carry.ffi.WeightUnit
import health.carry.ffi.setLogger

/**
 * The reason a Carry call failed, as one sentence fit to show (it never holds
 * health data). The generated `message` prefixes it with `reason=`.
 */
fun reasonOf(e: CarryException): String = when (e) {
    is CarryException.Locked -> e.reason
    is CarryException.WrongKey -> e.reason
    is CarryException.NotFound -> e.reason
    is CarryException.InvalidInput -> e.reason
    is CarryException.Network -> e.reason
    is CarryException.Auth -> e.reason
    is CarryException.Denied -> e.reason
    is CarryException.Expired -> e.reason
    is CarryException.Revoked -> e.reason
    is CarryException.Conflict -> e.reason
    is CarryException.Storage -> e.reason
    is CarryException.Cancelled -> e.reason
    is CarryException.NeedsUpdate -> e.reason
    is CarryException.Internal -> e.reason
}

/**
 * Send the core's log records at [maxLevel] and above to [sink] (for example
 * `android.util.Log`). Called on a Rust thread. Records never hold health data.
 */
fun logCarryTo(maxLevel: LogLevel = LogLevel.INFO, sink: (LogLevel, String, String) -> Unit) {
    setLogger(
        object : Logger {
            override fun log(level: LogLevel, target: String, message: String) =
                sink(level, target, message)
        },
        maxLevel,
    )
}

/** A reading as a person would write it: `72.5 kg`, `120/80 mmHg`, `mood 3/5`. */
fun Reading.describe(): String = when (this) {
    is Reading.Weight -> "${trim(value)} ${if (unit == WeightUnit.KILOGRAMS) "kg" else "lb"}"
    is Reading.BloodPressure -> "$systolic/$diastolic mmHg"
    is Reading.HeartRate -> "$bpm bpm"
    is Reading.Glucose ->
        "${trim(value)} ${if (unit == GlucoseUnit.MMOL_PER_L) "mmol/L" else "mg/dL"}"
    is Reading.Mood -> "mood $score/5"
    is Reading.Temperature -> "${trim(value)} °${if (unit == TemperatureUnit.CELSIUS) "C" else "F"}"
    is Reading.OxygenSaturation -> "$percent%"
    is Reading.PeakFlow -> "$litresPerMinute L/min"
}

private fun trim(v: Double): String =
    if (v == Math.floor(v) && !v.isInfinite()) v.toLong().toString() else v.toString()
