{% autoescape off %}@echo off
rem Installs the mdmportal enrollment package "{{ package }}.ppkg" (next to this script) silently.
rem Run as SYSTEM or an administrator: by a Configuration Manager program or an Ivanti EPM batch package.
rem The device then enrolls in the background as {{ pin_enrollment.upn }}.
DISM.exe /Online /Add-ProvisioningPackage /PackagePath:"%~dp0{{ package }}.ppkg"
exit /b %ERRORLEVEL%
{% endautoescape %}
