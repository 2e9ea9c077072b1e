/* Crazyflie-style control loop around a generated policy (policy.h from policies/export/c_codegen.py).
 *
 * As on the Crazyflie in "Learning to Fly in Seconds": the policy runs at 500 Hz on the latest
 * state estimate, while the action history in its observation advances at 100 Hz, the rate the
 * policy was trained at (one history entry per 10 ms simulator step).
 */
#ifndef FIRMWARE_LOOP_H
#define FIRMWARE_LOOP_H

#define FIRMWARE_STATE_DIM 18       /* position error, rotation matrix (row-major), velocity error, body rates */
#define FIRMWARE_ACTION_DIM 4
#define FIRMWARE_HISTORY_LENGTH 32
#define FIRMWARE_POLICY_HZ 500
#define FIRMWARE_HISTORY_HZ 100

typedef struct {
    float history[FIRMWARE_HISTORY_LENGTH * FIRMWARE_ACTION_DIM]; /* oldest first, normalized rpm in [-1, 1] */
    unsigned tick;                                                /* policy ticks since init */
} FirmwareState;

/* Fills the whole history with one action (the rotor command at take-off). */
void firmware_init(FirmwareState *fw, const float initial_action[FIRMWARE_ACTION_DIM]);

/* One 500 Hz tick: observation = state + history, action = policy(observation), clamped to [-1, 1];
   every 5th tick the action is appended to the history. */
void firmware_control(FirmwareState *fw, const float state[FIRMWARE_STATE_DIM], float action[FIRMWARE_ACTION_DIM]);

/* n vehicles at once (simulation harness): states and actions are row-major (n, 18) and (n, 4). */
void firmware_control_batch(FirmwareState *fw, int n, const float *states, float *actions);

#endif /* FIRMWARE_LOOP_H */
