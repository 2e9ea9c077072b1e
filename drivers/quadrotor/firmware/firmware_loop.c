/* See firmware_loop.h. No malloc, no libc beyond memcpy/memmove: fits the Crazyflie's STM32F405. */
#include "firmware_loop.h"

#include <string.h>

#include "policy.h"

#if POLICY_N_OBS != FIRMWARE_STATE_DIM + FIRMWARE_HISTORY_LENGTH * FIRMWARE_ACTION_DIM
#error "policy.h does not take the 146-value L2F observation"
#endif

#define TICKS_PER_HISTORY_STEP (FIRMWARE_POLICY_HZ / FIRMWARE_HISTORY_HZ)

void firmware_init(FirmwareState *fw, const float initial_action[FIRMWARE_ACTION_DIM])
{
    for (int i = 0; i < FIRMWARE_HISTORY_LENGTH; ++i) {
        memcpy(&fw->history[i * FIRMWARE_ACTION_DIM], initial_action, sizeof(float) * FIRMWARE_ACTION_DIM);
    }
    fw->tick = 0;
}

void firmware_control(FirmwareState *fw, const float state[FIRMWARE_STATE_DIM], float action[FIRMWARE_ACTION_DIM])
{
    float obs[POLICY_N_OBS];
    memcpy(obs, state, sizeof(float) * FIRMWARE_STATE_DIM);
    memcpy(&obs[FIRMWARE_STATE_DIM], fw->history, sizeof(fw->history));
    policy_forward(obs, action);
    for (int i = 0; i < FIRMWARE_ACTION_DIM; ++i) {
        /* written so that a NaN becomes the lowest command (motors off) */
        action[i] = action[i] > 1.0f ? 1.0f : (action[i] >= -1.0f ? action[i] : -1.0f);
    }
    fw->tick += 1;
    if (fw->tick % TICKS_PER_HISTORY_STEP == 0) {
        memmove(fw->history, &fw->history[FIRMWARE_ACTION_DIM],
                sizeof(float) * (FIRMWARE_HISTORY_LENGTH - 1) * FIRMWARE_ACTION_DIM);
        memcpy(&fw->history[(FIRMWARE_HISTORY_LENGTH - 1) * FIRMWARE_ACTION_DIM], action,
               sizeof(float) * FIRMWARE_ACTION_DIM);
    }
}

void firmware_control_batch(FirmwareState *fw, int n, const float *states, float *actions)
{
    for (int i = 0; i < n; ++i) {
        firmware_control(&fw[i], &states[i * FIRMWARE_STATE_DIM], &actions[i * FIRMWARE_ACTION_DIM]);
    }
}
