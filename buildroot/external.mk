include $(sort $(wildcard $(BR2_EXTERNAL_JARVIS_PATH)/package/*/*.mk))
