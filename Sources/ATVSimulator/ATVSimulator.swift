import ATVCore
